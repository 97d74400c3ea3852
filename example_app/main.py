"""The app object: ``uvicorn example_app.main:app`` or ``python -m example_app``.

Transports come from the environment: the in-memory transport always; Kafka when
``KAFKA_BOOTSTRAP_SERVERS`` is set.
"""

from __future__ import annotations

from example_app.app_module import AppModule
from framework import Application, create_app


def build_app() -> Application:
    return create_app(AppModule)


app = build_app()

"""The app object: ``framework run example_app.main:app`` or ``python -m example_app``.

Transports: in-memory (always), WebSocket on ``/ws``, Socket.IO on ``/socket.io/`` and
SSE on ``/events`` (same port as HTTP). Settings come from the environment
(``example_app/settings.py``). With ``KAFKA_BOOTSTRAP_SERVERS`` set, handlers are also
served from Kafka topics, events are emitted to Kafka, and ``app.publish`` reaches
browsers connected to any instance (each instance reads the broadcast topic).

``GET /openapi.json``: the OpenAPI 3.1 document of the HTTP routes. Operations:
``GET /health/live`` and ``/health/ready``, trace context on every message,
and Prometheus metrics at ``/metrics`` when prometheus-client is installed.
"""

from __future__ import annotations

import importlib.util

from example_app.app_module import AppModule
from example_app.settings import Settings
from framework import Application, create_app
from framework.config import load_settings
from framework.http import mount_openapi
from framework.observability import Observability
from framework.transports.base import Transport
from framework.transports.kafka import KafkaClient, KafkaRelay, KafkaSecurity, KafkaTransport
from framework.transports.socketio import SocketIoTransport
from framework.transports.sse import SseTransport
from framework.transports.websocket import WebSocketTransport


def observability() -> Observability:
    """Health probes and tracing; metrics only where the optional package is installed."""
    metrics = importlib.util.find_spec("prometheus_client") is not None
    return Observability(health_path="/health", metrics_path="/metrics" if metrics else None)


def kafka_security(settings: Settings) -> KafkaSecurity | None:
    """The Kafka security settings, or ``None`` for a PLAINTEXT cluster."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    password = settings.kafka_sasl_password
    return KafkaSecurity(
        protocol=settings.kafka_security_protocol,
        ca_file=settings.kafka_ssl_ca_file,
        mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password is not None else None,
    )


def build_app(
    kafka_bootstrap: str | None = None, *, settings: Settings | None = None
) -> Application:
    # The transports are built before the graph, so they read the settings here; the
    # providers get them injected (AppModule imports ConfigModule.for_root(Settings)).
    settings = settings or load_settings(Settings)
    transports: list[Transport] = [
        WebSocketTransport(path="/ws"),
        SocketIoTransport(),
        SseTransport(path="/events"),
    ]
    if not kafka_bootstrap:
        return _with_docs(
            create_app(AppModule, transports=transports, observability=observability())
        )
    security = kafka_security(settings)
    transports.append(
        KafkaTransport(
            bootstrap_servers=kafka_bootstrap,
            group_id=settings.kafka_group_id,
            auto_offset_reset="earliest",
            security=security,
        )
    )
    return _with_docs(
        create_app(
            AppModule,
            transports=transports,
            default_client=KafkaClient(bootstrap_servers=kafka_bootstrap, security=security),
            relay=KafkaRelay(
                bootstrap_servers=kafka_bootstrap, topic="example.broadcast", security=security
            ),
            observability=observability(),
        )
    )


def _with_docs(app: Application) -> Application:
    """The HTTP routes' OpenAPI document at ``/openapi.json``."""
    mount_openapi(app, "/openapi.json", title="Example orders service")
    return app


settings = load_settings(Settings)
app = build_app(settings.kafka_bootstrap_servers, settings=settings)

"""The pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:
    framework_app: a factory ``await framework_app(AppModule, overrides={...})`` that starts
        a ``TestingApp`` and stops it after the test.
    kafka_bootstrap_servers: a real Kafka broker for the session (see
        ``framework.testing.kafka``).
    kafka_secure_broker: a local broker for the session with SSL, SASL_PLAINTEXT and
        SASL_SSL listeners.
    local_kafka_broker: a fresh local broker for one test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from framework.testing.kafka.pytest_fixtures import (
    kafka_bootstrap_servers,
    kafka_secure_broker,
    local_kafka_broker,
)
from framework.testing.module import TestingApp, create_testing_module

__all__ = [
    "framework_app",
    "kafka_bootstrap_servers",
    "kafka_secure_broker",
    "local_kafka_broker",
]

AppFactory = Callable[..., Awaitable[TestingApp]]


try:  # the async fixture needs pytest-asyncio; without it the plugin still loads
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # pragma: no cover - depends on the user's environment
    async_fixture = pytest.fixture  # type: ignore[assignment]


@async_fixture
async def framework_app() -> AsyncIterator[AppFactory]:
    """Start test apps; each is stopped when the test ends."""
    started: list[TestingApp] = []

    async def factory(root_module: Any, overrides: Mapping[Any, Any] | None = None) -> TestingApp:
        builder = create_testing_module(root_module)
        for token, value in (overrides or {}).items():
            builder.override_provider(token, use_value=value)
        app = await builder.compile().start()
        started.append(app)
        return app

    yield factory
    for app in reversed(started):
        await app.stop()

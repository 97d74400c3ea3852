"""Contract harness for the Kafka transport, on the session's real Apache Kafka broker.

Each app gets its own consumer group (starting at the topics' end), so earlier tests'
records never reach it; the client reads replies from ``<pattern>.reply`` topics.

Kafka delivers only the topics a service subscribes to: a request to a topic nobody
consumes times out. So the app also subscribes to ``contract.missing`` (``topics=``),
which exercises the server's NestJS "no matching message handler" reply.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from framework import create_app
from framework.transports.kafka import KafkaClient, KafkaTransport
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.memory import Served

NAME = "kafka"
MARKS = [pytest.mark.kafka]
SETUP_FIXTURES = ["kafka_bootstrap_servers"]
CANCELS_STREAMS = False
"""NestJS's Kafka wire has no cancel message: a client that stops reading a stream
leaves the server's generator running to its end (docs/transports/kafka.md)."""

BOOTSTRAP_SERVERS: str | None = None
"""Set by the ``kafka_bootstrap_servers`` fixture in tests/conftest.py."""


@asynccontextmanager
async def serve(root_module: Any, **transport_options: Any) -> AsyncIterator[Served]:
    """Start ``root_module`` on a ``KafkaTransport``; yield a ``KafkaClient``."""
    bootstrap = BOOTSTRAP_SERVERS
    assert bootstrap is not None, "request the kafka_bootstrap_servers fixture first"
    options: dict[str, Any] = {
        "group_id": f"contract-{uuid.uuid4().hex[:8]}",
        "topics": ["contract.missing"],
        "retry_backoff": 0.01,
        "max_retries": 1,
        "start_timeout": 30 * TIME_FACTOR,
    }
    options.update(transport_options)
    engine = options.get("engine", "aiokafka")
    transport = KafkaTransport(bootstrap_servers=bootstrap, **options)
    async with create_app(root_module, transports=[transport]) as app:
        client = KafkaClient(
            bootstrap_servers=bootstrap, default_timeout=15 * TIME_FACTOR, engine=engine
        )
        async with client:
            yield Served(app, client, NAME)

"""The Kafka contract harness on the confluent-kafka (librdkafka) engine: the same
server and client as ``kafka.py``, both with ``engine="confluent"``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.transports.harnesses import kafka
from tests.transports.harnesses.memory import Served

NAME = "kafka-confluent"
MARKS = kafka.MARKS
SETUP_FIXTURES = kafka.SETUP_FIXTURES
CANCELS_STREAMS = kafka.CANCELS_STREAMS


@asynccontextmanager
async def serve(root_module: Any, **transport_options: Any) -> AsyncIterator[Served]:
    async with kafka.serve(root_module, engine="confluent", **transport_options) as served:
        yield served

"""Contract harness for the Redis Streams example transport (examples/redis_streams/), on
the session's real redis-server.

Each app gets its own key prefix and consumer group, so earlier tests' entries never
reach it. Redis cannot subscribe to streams nobody handles, so the app also reads
``contract.missing`` (``streams=``), which exercises the "no matching handler" reply.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from framework import create_app
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.memory import Served

NAME = "redis-streams"
MARKS = [pytest.mark.redis]
SETUP_FIXTURES = ["redis_url"]

URL: str | None = None
"""Set by the ``redis_url`` fixture in tests/conftest.py."""


@asynccontextmanager
async def serve(root_module: Any, **transport_options: Any) -> AsyncIterator[Served]:
    """Start ``root_module`` on a ``RedisStreamsTransport``; yield a ``RedisStreamsClient``."""
    assert URL is not None, "request the redis_url fixture first"
    # Imported here: without the redis package this module must still load (the
    # redis_url fixture then skips, or fails under REQUIRE_REDIS=1).
    from examples.redis_streams import RedisStreamsClient, RedisStreamsTransport

    prefix = f"contract-{uuid.uuid4().hex[:8]}:"
    options: dict[str, Any] = {
        "prefix": prefix,
        "group": "contract",
        "streams": ["contract.missing"],
        "claim_idle": 5 * TIME_FACTOR,
    }
    options.update(transport_options)
    transport = RedisStreamsTransport(URL, **options)
    async with create_app(root_module, transports=[transport]) as app:
        client = RedisStreamsClient(URL, prefix=prefix, default_timeout=10 * TIME_FACTOR)
        async with client:
            yield Served(app, client, NAME)

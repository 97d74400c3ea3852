"""Fixtures shared by the whole suite: a real Kafka broker and a real redis-server
(each started once, on demand)."""

from __future__ import annotations

import pytest

pytest_plugins = ["framework.testing.kafka.pytest_fixtures", "tests.redis_server"]


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(kafka_bootstrap_servers: str) -> str:
    """The session broker, also published to the Kafka contract harness (a harness
    module cannot request fixtures itself)."""
    from tests.transports.harnesses import kafka

    kafka.BOOTSTRAP_SERVERS = kafka_bootstrap_servers
    return kafka_bootstrap_servers


@pytest.fixture(scope="session")
def redis_url(redis_server_url: str) -> str:
    """The session's Redis server, also published to the Redis Streams contract harness."""
    from tests.transports.harnesses import redis_streams

    redis_streams.URL = redis_server_url
    return redis_server_url

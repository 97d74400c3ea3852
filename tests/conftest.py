"""Fixtures shared by the whole suite: a real Kafka broker (started once, on demand)."""

from __future__ import annotations

import pytest

pytest_plugins = ["framework.testing.kafka.pytest_fixtures"]


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(kafka_bootstrap_servers: str) -> str:
    """The session broker, also published to the Kafka contract harness (a harness
    module cannot request fixtures itself)."""
    from tests.transports.harnesses import kafka

    kafka.BOOTSTRAP_SERVERS = kafka_bootstrap_servers
    return kafka_bootstrap_servers

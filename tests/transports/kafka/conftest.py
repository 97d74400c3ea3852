"""The ``engine`` fixture: a behavioural Kafka test that takes it runs on each engine."""

from __future__ import annotations

import pytest

ENGINES = ("aiokafka", "confluent")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The Kafka engine under test (``KafkaTransport(engine=...)``)."""
    name: str = request.param
    return name

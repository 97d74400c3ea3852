"""The test double and a real broker agree: one scenario (a failing record, poison
records, good ones) run through ``KafkaTestBroker`` and through ``KafkaTransport`` on the
real Apache Kafka broker gives the same handler calls and the same dead letters."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from framework import controller, create_app, event_pattern, module
from framework.testing import KafkaTestBroker
from tests.transports.kafka.test_kafka import Calls, name, produce, read, transport

pytestmark = pytest.mark.kafka

RECORDS: list[tuple[bytes, list[tuple[str, bytes]]]] = [
    (b'{"id": 0, "total": 1}', []),
    (b'{"id": 1, "total": 1}', [("trace", b"t-1")]),  # always fails
    (b'{"id": "x"}', []),  # does not validate
    (b"\xff\xfe", []),  # not UTF-8
    (b'{"id": 2, "total": 1}', []),
]
VARYING = {"kafka_dlt-original-timestamp", "kafka_dlt-exception-stacktrace"}


class Order(BaseModel):
    id: int
    total: float


def _app(topic: str, attempts: list[int], handled: Calls) -> type:
    @controller()
    class Orders:
        @event_pattern(topic, max_retries=2, retry_backoff=0.01)
        async def on_order(self, order: Order) -> None:
            attempts.append(order.id)
            if order.id == 1:
                raise RuntimeError("payment service down")
            handled.add(order.id)

    @module(controllers=[Orders])
    class App:
        pass

    return App


def _comparable(dead: list[Any]) -> list[tuple[bytes, dict[str, bytes]]]:
    out = [(r.value, {k: v for k, v in r.headers if k not in VARYING}) for r in dead]
    return sorted(out, key=lambda item: item[1]["kafka_dlt-original-offset"])


async def test_double_and_real_broker_dead_letter_the_same_records(
    kafka_bootstrap_servers: str,
) -> None:
    topic = name("parity")
    real_attempts: list[int] = []
    real_handled = Calls(expected=2)
    app = create_app(
        _app(topic, real_attempts, real_handled),
        transports=[transport(kafka_bootstrap_servers)],
    )
    async with app:
        await produce(kafka_bootstrap_servers, topic, *RECORDS)
        await real_handled.wait()
        real_dead = await read(kafka_bootstrap_servers, f"{topic}.dlq", 3)

    double_attempts: list[int] = []
    double_handled = Calls(expected=2)
    kafka = KafkaTestBroker()
    async with create_app(_app(topic, double_attempts, double_handled), transports=[kafka]):
        for value, headers in RECORDS:
            await kafka.produce(topic, value, headers=dict(headers))
    double_dead = kafka.dead_letters(topic)

    assert double_handled.items == real_handled.items == [0, 2]
    assert double_attempts == real_attempts == [0, 1, 1, 1, 2]
    assert _comparable(double_dead) == _comparable(real_dead)
    assert len(double_dead) == 3

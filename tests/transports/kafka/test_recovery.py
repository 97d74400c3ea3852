"""``Recovery`` with a fake producer and dispatcher: retries, waits, dead letters."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, RecordTooLargeError  # type: ignore[import-untyped]
from pydantic import BaseModel, ValidationError

from framework.messaging.dispatch import Inbound
from framework.transports.kafka._recovery import Recovery
from framework.transports.kafka._retry import RetryPolicy
from tests.transports.kafka.fakes import FakeDispatcher, FakeHandler, FakeLane, FakeProducer, Record


class Order(BaseModel):
    id: int


def failing(times: int, exc: Exception | None = None) -> FakeDispatcher:
    async def behave(attempt: int, inbound: Inbound) -> None:
        if attempt <= times:
            raise exc or RuntimeError(f"payment service down ({attempt})")

    return FakeDispatcher(behave)


def recovery(
    dispatcher: FakeDispatcher, producer: FakeProducer, **policy: Any
) -> tuple[Recovery, list[str]]:
    events: list[str] = []
    settings: dict[str, Any] = {"max_retries": 2, "retry_backoff": 0.1, "jitter": 0}
    settings.update(policy)
    found = Recovery(
        dispatcher,  # type: ignore[arg-type]
        producer,
        policy=RetryPolicy(**settings),
        retried=lambda h: events.append(f"retried {h.name}"),
        gave_up=lambda h: events.append(f"gave up {h.name}"),
    )
    return found, events


async def first_failure(dispatcher: FakeDispatcher, inbound: Inbound) -> Exception:
    try:
        await dispatcher.call(FakeHandler(), inbound)
    except Exception as exc:
        return exc
    raise AssertionError("the handler did not fail")


async def test_retries_with_backoff_then_dead_letters_with_the_dlt_headers() -> None:
    dispatcher, producer, lane = failing(times=100), FakeProducer(), FakeLane()
    rec, events = recovery(dispatcher, producer)
    record = Record(offset=42, headers=[("traceparent", b"00-abc-def-01")])
    inbound = Inbound("orders", record.value, None, record)
    handler = FakeHandler()
    assert await rec.recover(lane, inbound, handler, await first_failure(dispatcher, inbound))  # type: ignore[arg-type]
    assert dispatcher.calls == 3  # first call + max_retries
    assert lane.waits == [0.1, 0.2]
    assert events == ["retried Orders.on_order"] * 2 + ["gave up Orders.on_order"]
    [dead] = producer.sent
    assert (dead.topic, dead.value) == ("orders.dlq", b'{"id":1}')
    assert dead.headers["traceparent"] == b"00-abc-def-01"
    assert dead.headers["kafka_dlt-original-topic"] == b"orders"
    assert dead.headers["kafka_dlt-original-offset"] == b"42"
    assert dead.headers["kafka_dlt-exception-fqcn"] == b"builtins.RuntimeError"
    assert dead.headers["kafka_dlt-exception-message"] == b"payment service down (3)"
    assert dead.headers["kafka_deliveryAttempt"] == b"3"
    assert dead.headers["framework_dlt-handler"] == b"Orders.on_order"


async def test_jittered_waits_stay_under_the_exact_ones() -> None:
    dispatcher, lane = failing(times=100), FakeLane()
    rec, _ = recovery(dispatcher, FakeProducer(), max_retries=4, jitter=0.5)
    inbound = Inbound("orders", b"{}", None, Record())
    await rec.recover(lane, inbound, FakeHandler(), await first_failure(dispatcher, inbound))  # type: ignore[arg-type]
    exact = [0.1, 0.2, 0.4, 0.8]
    assert all(e / 2 <= w <= e for w, e in zip(lane.waits, exact, strict=True))


async def test_a_retry_that_succeeds_writes_no_dead_letter() -> None:
    dispatcher, producer, lane = failing(times=2), FakeProducer(), FakeLane()
    rec, events = recovery(dispatcher, producer, max_retries=5)
    inbound = Inbound("orders", b"{}", None, Record())
    assert await rec.recover(lane, inbound, FakeHandler(), await first_failure(dispatcher, inbound))  # type: ignore[arg-type]
    assert dispatcher.calls == 3 and producer.sent == []
    assert events == ["retried Orders.on_order"] * 2


async def test_poison_goes_to_the_dead_letter_topic_at_once() -> None:
    with pytest.raises(ValidationError) as invalid:
        Order.model_validate_json(b'{"id": "x"}')
    dispatcher, producer, lane = failing(times=100, exc=invalid.value), FakeProducer(), FakeLane()
    rec, _ = recovery(dispatcher, producer)
    inbound = Inbound("orders", b'{"id": "x"}', None, Record())
    assert await rec.recover(lane, inbound, FakeHandler(), await first_failure(dispatcher, inbound))  # type: ignore[arg-type]
    assert dispatcher.calls == 1 and lane.waits == []
    assert producer.sent[0].headers["kafka_deliveryAttempt"] == b"1"


async def test_dlq_false_drops_the_record_and_a_named_dlq_is_used() -> None:
    for dlq, topics in ((False, []), ("orders.dead", ["orders.dead"])):
        dispatcher, producer = failing(times=100), FakeProducer()
        rec, events = recovery(dispatcher, producer, max_retries=0, dlq=dlq)
        inbound = Inbound("orders", b"{}", None, Record())
        exc = await first_failure(dispatcher, inbound)
        assert await rec.recover(FakeLane(), inbound, FakeHandler(), exc)  # type: ignore[arg-type]
        assert [s.topic for s in producer.sent] == topics
        assert events == ["gave up Orders.on_order"]


async def test_a_refused_dead_letter_is_retried_with_backoff_unless_hopeless() -> None:
    dispatcher, producer, lane = failing(times=100), FakeProducer(), FakeLane()
    producer.failures = [KafkaConnectionError(), KafkaConnectionError()]
    rec, _ = recovery(dispatcher, producer, max_retries=0, retry_backoff=0.01)
    inbound = Inbound("orders", b"{}", None, Record())
    assert await rec.recover(lane, inbound, FakeHandler(), await first_failure(dispatcher, inbound))  # type: ignore[arg-type]
    assert lane.waits == [0.05, 0.1]  # at least 50 ms, doubling
    assert len(producer.sent) == 1
    hopeless = FakeProducer()
    hopeless.failures = [RecordTooLargeError()]
    rec, _ = recovery(failing(times=100), hopeless, max_retries=0)
    assert await rec.recover(FakeLane(), inbound, FakeHandler(), RuntimeError("x"))  # type: ignore[arg-type]
    assert hopeless.sent == []  # dropped, the partition moves on


async def test_a_lane_closing_during_a_wait_leaves_the_record_unfinished() -> None:
    dispatcher, producer, lane = failing(times=100), FakeProducer(), FakeLane(close_after=0)
    rec, events = recovery(dispatcher, producer)
    inbound = Inbound("orders", b"{}", None, Record())
    assert not await rec.recover(lane, inbound, FakeHandler(), RuntimeError("x"))  # type: ignore[arg-type]
    assert dispatcher.calls == 0 and producer.sent == [] and events == []

"""``KafkaTestBroker``: Kafka handler behaviour (context, retries, dead letters, batches,
requests) exercised without a broker, through the Kafka transport's own record path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from framework import RemoteError, controller, event_pattern, message_pattern, module
from framework.testing import KafkaTestBroker, create_testing_module
from framework.transports.kafka import KafkaContext, KafkaTransport
from framework.transports.kafka.wire import decode_headers


class OrderCreated(BaseModel):
    id: int
    total: float


class Flaky(Exception):
    pass


@controller()
class OrdersController:
    def __init__(self) -> None:
        self.seen: list[tuple[int, int, bytes | None, dict[str, object]]] = []
        self.attempts: dict[int, int] = {}
        self.fail_times: dict[int, int] = {}

    @event_pattern("orders.created")
    async def on_created(self, event: OrderCreated, ctx: KafkaContext) -> None:
        self.attempts[event.id] = self.attempts.get(event.id, 0) + 1
        if self.attempts[event.id] <= self.fail_times.get(event.id, 0):
            raise Flaky(f"order {event.id} not yet")
        self.seen.append((event.id, ctx.offset, ctx.key, ctx.headers))

    @event_pattern("orders.audit", max_retries=1, dlq="audit.dead")
    async def on_audit(self, event: OrderCreated) -> None:
        raise Flaky("audit store down")

    @message_pattern("orders.total")
    async def total(self, event: OrderCreated) -> float:
        if event.total < 0:
            raise ValueError("negative total")
        return event.total * 2

    @message_pattern("orders.count")
    async def count(self, upto: int) -> AsyncIterator[int]:
        for i in range(upto):
            yield i


@module(controllers=[OrdersController])
class OrdersModule:
    pass


def _broker() -> KafkaTestBroker:
    return KafkaTestBroker(KafkaTransport(max_retries=2, retry_backoff=0.2, retry_jitter=0))


async def test_handler_gets_a_real_shaped_kafka_context() -> None:
    kafka = _broker()
    async with create_testing_module(OrdersModule).with_transports(kafka).compile() as t:
        await kafka.produce("orders.created", {"id": 1, "total": 2.5}, key="k1")
        record = await kafka.produce(
            "orders.created", {"id": 2, "total": 1}, headers={"trace": "abc", "meta": '{"a":1}'}
        )
        assert record.offset == 1 and record.topic == "orders.created"
        assert t.get(OrdersController).seen == [
            (1, 0, b"k1", {}),
            (2, 1, None, {"trace": "abc", "meta": {"a": 1}}),
        ]


async def test_retries_follow_the_policy_then_succeed() -> None:
    kafka = _broker()
    async with create_testing_module(OrdersModule).with_transports(kafka).compile() as t:
        orders = t.get(OrdersController)
        orders.fail_times[7] = 2
        await kafka.produce("orders.created", {"id": 7, "total": 1})
        assert orders.attempts[7] == 3
        assert [seen[0] for seen in orders.seen] == [7]
        assert kafka.retry_delays == [0.2, 0.4]  # doubling, no jitter: waits not slept
        assert kafka.dead_letters("orders.created") == []


async def test_a_handler_that_keeps_failing_is_dead_lettered_with_dlt_headers() -> None:
    kafka = _broker()
    async with create_testing_module(OrdersModule).with_transports(kafka).compile() as t:
        t.get(OrdersController).fail_times[9] = 99
        record = await kafka.produce("orders.created", {"id": 9, "total": 1}, key="nine")
        assert t.get(OrdersController).attempts[9] == 3  # 1 + max_retries
        (dead,) = kafka.dead_letters("orders.created")
        assert dead.value == record.value and dead.key == b"nine"
        headers = decode_headers(dead.headers)
        assert headers["kafka_dlt-original-topic"] == "orders.created"
        assert headers["kafka_dlt-original-offset"] == "0"
        assert headers["kafka_dlt-exception-message"] == "order 9 not yet"
        assert headers["framework_dlt-handler"] == "OrdersController.on_created"


async def test_invalid_payload_goes_to_the_dead_letter_topic_without_retries() -> None:
    kafka = _broker()
    async with create_testing_module(OrdersModule).with_transports(kafka).compile() as t:
        await kafka.produce("orders.created", {"id": "not a number"})
        assert t.get(OrdersController).attempts == {}
        assert kafka.retry_delays == []
        assert len(kafka.dead_letters("orders.created")) == 1


async def test_per_handler_retry_extras_and_dlq_topic() -> None:
    kafka = _broker()
    async with create_testing_module(OrdersModule).with_transports(kafka).compile():
        await kafka.produce("orders.audit", {"id": 1, "total": 1})
        assert kafka.retry_delays == [0.2]  # max_retries=1 on the handler
        assert len(kafka.records("audit.dead")) == 1
        assert kafka.dead_letters("orders.audit") == []  # not <topic>.dlq: it named one


async def test_a_batch_moves_past_a_dead_lettered_record_in_offset_order() -> None:
    kafka = _broker()
    async with create_testing_module(OrdersModule).with_transports(kafka).compile() as t:
        orders = t.get(OrdersController)
        orders.fail_times[2] = 99
        batch = [{"id": i, "total": 1} for i in (1, 2, 3)]
        records = await kafka.produce_batch("orders.created", batch, partition=3)
        assert [(r.partition, r.offset) for r in records] == [(3, 0), (3, 1), (3, 2)]
        assert [(i, offset) for i, offset, _, _ in orders.seen] == [(1, 0), (3, 2)]
        (dead,) = kafka.dead_letters("orders.created")
        assert decode_headers(dead.headers)["kafka_dlt-original-partition"] == "3"


async def test_requests_reply_as_nestjs_expects() -> None:
    kafka = _broker()
    async with create_testing_module(OrdersModule).with_transports(kafka).compile():
        assert await kafka.request("orders.total", {"id": 1, "total": 2.5}) == 5.0
        with pytest.raises(RemoteError, match="Internal server error") as failed:
            await kafka.request("orders.total", {"id": 1, "total": -1})
        assert failed.value.payload["status"] == "error"
        assert [i async for i in kafka.stream("orders.count", 3)] == [0, 1, 2]
        with pytest.raises(RemoteError, match="no matching message handler"):
            await kafka.request("orders.unknown", 1)
        (reply, *_) = kafka.records("orders.total.reply")
        assert dict(reply.headers)["kafka_correlationId"]


async def test_the_test_client_emits_and_sends_through_the_double() -> None:
    kafka = _broker()
    async with create_testing_module(OrdersModule).with_transports(kafka).compile() as t:
        client = kafka.create_client()
        await client.emit("orders.created", {"id": 5, "total": 1}, key="5")
        assert [seen[0] for seen in t.get(OrdersController).seen] == [5]
        assert await client.send("orders.total", {"id": 5, "total": 4}) == 8.0

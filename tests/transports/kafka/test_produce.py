"""Producing from handlers (``emits=``, ``ctx.send``), at least once and exactly once,
on the real broker: what a ``read_committed`` reader of the output topics sees."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from pydantic import BaseModel

from framework import Provider, controller, create_app, event_pattern, message_pattern, module
from framework.exceptions import ConfigurationError, TransportError
from framework.transports.kafka import (
    KafkaContext,
    KafkaRecord,
    KafkaTable,
    KafkaTransport,
    TumblingWindow,
)
from tests.timing import TIME_FACTOR

pytestmark = pytest.mark.kafka

LIMIT = 30 * TIME_FACTOR
MODES = pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "eos"])


class Order(BaseModel):
    id: int
    total: float


def name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def transport(bootstrap: str, **options: Any) -> KafkaTransport:
    settings: dict[str, Any] = {
        "group_id": name("g"),
        "start_timeout": LIMIT,
        "auto_offset_reset": "earliest",
    }
    settings.update(options)
    return KafkaTransport(bootstrap_servers=bootstrap, **settings)


async def produce(bootstrap: str, topic: str, *records: tuple[bytes | None, bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str, topic: str, count: int, *, settle: float = 0.5, **options: Any
) -> list[Any]:
    """Every committed record of ``topic``: at least ``count``, then whatever else arrives
    within ``settle`` seconds (so a duplicate would be seen). ``options``: more
    ``AIOKafkaConsumer`` options (security settings)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        isolation_level="read_committed",
        **options,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        async with asyncio.timeout(LIMIT):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found.extend(records)
        for records in (await consumer.getmany(timeout_ms=int(settle * 1000))).values():
            found.extend(records)
    finally:
        await consumer.stop()
    return found


async def committed(bootstrap: str, group: str, topic: str, expected: int) -> int | None:
    """The group's committed offset of partition 0 once it is ``expected`` (or whatever
    it is after the time limit). A transaction's offsets show only once the broker has
    written its commit markers, a moment after ``commit_transaction`` returned."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    result: int | None = None
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LIMIT):
                while (result := await consumer.committed(TopicPartition(topic, 0))) != expected:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        return result
    finally:
        await consumer.stop()


@MODES
async def test_emits_produces_each_result_keyed_by_the_input(
    kafka_bootstrap_servers: str, exactly_once: bool
) -> None:
    bootstrap, orders, totals, lines = (
        kafka_bootstrap_servers,
        name("orders"),
        name("totals"),
        name("lines"),
    )

    @controller()
    class Totals:
        @event_pattern(orders, emits=totals)
        async def total(self, order: Order) -> dict[str, Any] | KafkaRecord | None:
            if order.id == 2:
                return None  # nothing produced
            if order.id == 3:
                return KafkaRecord({"id": 3}, key="override", headers={"h": "v"})
            return {"id": order.id, "doubled": order.total * 2}

        @event_pattern(orders, emits=lines)
        async def split(self, order: Order) -> AsyncIterator[int]:
            for line in range(order.id):
                yield line

    @module(controllers=[Totals])
    class App:
        pass

    group = name("g")
    async with create_app(
        App, transports=[transport(bootstrap, group_id=group, exactly_once=exactly_once)]
    ):
        await produce(
            bootstrap,
            orders,
            (b"k1", b'{"id": 1, "total": 2.5}'),
            (b"k2", b'{"id": 2, "total": 1}'),
            (b"k3", b'{"id": 3, "total": 1}'),
        )
        out = await read_all(bootstrap, totals, 2)
        items = await read_all(bootstrap, lines, 6)
    assert [(r.key, r.value) for r in out] == [
        (b"k1", b'{"id":1,"doubled":5.0}'),
        (b"override", b'{"id":3}'),
    ]
    assert out[1].headers == (("h", b"v"),)
    assert sorted((r.key, r.value) for r in items) == sorted(
        [(b"k1", b"0"), (b"k2", b"0"), (b"k2", b"1"), (b"k3", b"0"), (b"k3", b"1"), (b"k3", b"2")]
    )
    assert await committed(bootstrap, group, orders, 3) == 3


@MODES
async def test_a_failed_attempt_produces_nothing_and_a_poison_record_is_dead_lettered_once(
    kafka_bootstrap_servers: str, exactly_once: bool
) -> None:
    bootstrap, orders, audit = kafka_bootstrap_servers, name("orders"), name("audit")
    attempts: dict[int, int] = {}

    @controller()
    class Audit:
        @event_pattern(orders, max_retries=2, retry_backoff=0.01)
        async def audit(self, order: Order, ctx: KafkaContext) -> None:
            attempts[order.id] = attempts.get(order.id, 0) + 1
            ctx.send(audit, {"id": order.id, "attempt": attempts[order.id]}, headers={"a": "1"})
            if order.id == 1 and attempts[1] < 3:
                raise RuntimeError("flaky")  # the sends of this attempt are dropped
            if order.id == 2:
                raise RuntimeError("always")  # dead-lettered after 3 attempts

    @module(controllers=[Audit])
    class App:
        pass

    group = name("g")
    server = transport(bootstrap, group_id=group, exactly_once=exactly_once)
    async with create_app(App, transports=[server]):
        await produce(
            bootstrap,
            orders,
            (b"a", b'{"id": 0, "total": 1}'),
            (b"b", b'{"id": 1, "total": 1}'),
            (b"c", b'{"id": 2, "total": 1}'),
            (b"d", b'{"id": "poison"}'),
            (b"e", b'{"id": 3, "total": 1}'),
        )
        out = await read_all(bootstrap, audit, 3)
        dead = await read_all(bootstrap, f"{orders}.dlq", 2)
    assert [(r.key, r.value) for r in out] == [
        (b"a", b'{"id":0,"attempt":1}'),
        (b"b", b'{"id":1,"attempt":3}'),
        (b"e", b'{"id":3,"attempt":1}'),
    ]
    assert [dict(r.headers)["kafka_dlt-original-offset"] for r in dead] == [b"2", b"3"]
    assert await committed(bootstrap, group, orders, 5) == 5
    assert server.aborted_transactions == 0


async def test_exactly_once_outputs_are_invisible_until_their_batch_commits(
    kafka_bootstrap_servers: str,
) -> None:
    """A handler's output is sent into the batch's transaction: a ``read_committed``
    reader sees nothing while the batch is still being handled."""
    bootstrap, orders, out_topic = kafka_bootstrap_servers, name("orders"), name("out")
    first_sent = asyncio.Event()
    release = asyncio.Event()

    @controller()
    class Slow:
        @event_pattern(orders, emits=out_topic)
        async def handle(self, order: Order) -> int:
            if order.id == 1:
                first_sent.set()
                await release.wait()  # record 0's output is in the open transaction
            return order.id

    @module(controllers=[Slow])
    class App:
        pass

    # Produced before the app starts, so that both records come in one batch.
    await produce(
        bootstrap, orders, (b"a", b'{"id": 0, "total": 1}'), (b"b", b'{"id": 1, "total": 1}')
    )
    async with create_app(App, transports=[transport(bootstrap, exactly_once=True)]):
        async with asyncio.timeout(LIMIT):
            await first_sent.wait()
        with pytest.raises(TimeoutError):
            await read_all_within(bootstrap, out_topic, 0.5 * TIME_FACTOR)
        release.set()
        out = await read_all(bootstrap, out_topic, 2)
    assert [r.value for r in out] == [b"0", b"1"]


async def read_all_within(bootstrap: str, topic: str, seconds: float) -> None:
    """Raise ``TimeoutError`` unless a committed record of ``topic`` shows up in time."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(seconds):
            while not any((await consumer.getmany(timeout_ms=100)).values()):
                pass
    finally:
        await consumer.stop()


def test_emits_is_for_kafka_event_handlers_only() -> None:
    with pytest.raises(ConfigurationError, match="only the Kafka transport"):
        event_pattern("orders", emits="totals", transports=["kafka", "memory"])
    with pytest.raises(ConfigurationError, match="for event handlers"):
        message_pattern("orders", emits="totals")
    with pytest.raises(ConfigurationError, match="one topic name"):
        event_pattern("orders", emits="totals.*")


async def test_an_emits_handler_is_not_served_by_other_transports() -> None:
    seen: list[int] = []

    @controller()
    class Totals:
        @event_pattern("orders.emits", emits="totals")
        async def total(self, order: Order) -> int:
            seen.append(order.id)
            return order.id

    @module(controllers=[Totals])
    class App:
        pass

    async with create_app(App) as app:  # the in-memory transport only
        with pytest.raises(Exception, match="no matching message handler"):
            await app.client.send("orders.emits", {"id": 1, "total": 1})
    assert seen == []


async def produce_at(bootstrap: str, topic: str, *records: tuple[bytes, int, int]) -> None:
    """Records (key, timestamp ms, partition) with a ``{"id": 0, "total": 1}`` value."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, ts, partition in records:
            await producer.send_and_wait(
                topic, b'{"id": 0, "total": 1}', key=key, timestamp_ms=ts, partition=partition
            )
    finally:
        await producer.stop()


@MODES
async def test_a_tumbling_window_count_survives_a_restart_through_its_changelog(
    kafka_bootstrap_servers: str, exactly_once: bool
) -> None:
    bootstrap, clicks, counts = kafka_bootstrap_servers, name("clicks"), name("counts")
    base = 1_700_000_000_000  # ms, a window boundary

    @controller()
    class Counts:
        @event_pattern(clicks, emits=counts, window=TumblingWindow(10, grace=1))
        async def per_window(self, order: Order) -> int:
            return 1

        @event_pattern(clicks, emits=f"{counts}.sum", window=TumblingWindow(10), aggregate="sum")
        async def totals(self, order: Order) -> float:
            return order.total

    @module(controllers=[Counts])
    class App:
        pass

    group = name("g")

    def server() -> KafkaTransport:
        return transport(bootstrap, group_id=group, exactly_once=exactly_once)

    first = server()
    async with create_app(App, transports=[first]):
        await produce_at(bootstrap, clicks, (b"a", base + 1000, 0), (b"b", base + 2000, 0))
        await produce_at(bootstrap, clicks, (b"a", base + 9000, 0))
        await wait_for(lambda: first.window_stats()["state_size"] == 4)  # 2 keys x 2 handlers
    second = server()  # a restart: the open windows come back from the changelog
    async with create_app(App, transports=[second]):
        await produce_at(
            bootstrap,
            clicks,
            (b"a", base + 9500, 0),
            (b"a", base + 12000, 0),  # stream time 12 s: [0, 10 s) closes after grace
            (b"b", base + 3000, 0),  # late: its window closed at 11 s
        )
        out = await read_all(bootstrap, counts, 2)
        sums = await read_all(bootstrap, f"{counts}.sum", 2)
        await wait_for(lambda: second.window_stats()["late_records"] >= 1)
        stats = second.window_stats()
    assert sorted((r.key, json.loads(r.value)["value"]) for r in out) == [(b"a", 3), (b"b", 1)]
    assert json.loads(out[0].value)["start"] == base
    assert json.loads(out[0].value)["end"] == base + 10_000
    assert sorted((r.key, json.loads(r.value)["value"]) for r in sums) == [(b"a", 3), (b"b", 1)]
    assert stats["windows_closed"] == 4
    assert stats["late_records"] == 2  # one per handler


async def wait_for(condition: Any) -> None:
    """Poll ``condition`` (transport counters, which have no event to await)."""
    async with asyncio.timeout(LIMIT):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


class Balances(KafkaTable):
    """A table as a provider of its own type (injected into the controller)."""

    def __init__(self) -> None:
        super().__init__("balances")


@MODES
async def test_a_keyed_table_survives_a_restart_and_a_failed_call_writes_nothing(
    kafka_bootstrap_servers: str, exactly_once: bool
) -> None:
    bootstrap, payments, out = kafka_bootstrap_servers, name("payments"), name("balance")
    table = Balances()
    attempts: list[float] = []

    @controller()
    class Accounts:
        def __init__(self, balances: Balances) -> None:
            self.balances = balances

        @event_pattern(payments, emits=out, max_retries=1, retry_backoff=0.01)
        async def pay(self, order: Order, ctx: KafkaContext) -> float:
            assert ctx.key is not None
            balance = self.balances.get(ctx.key, 0.0) + order.total
            self.balances.set(ctx.key, balance)
            attempts.append(order.total)
            if order.total == 13 and attempts.count(13) == 1:
                raise RuntimeError("once")  # its set() is undone, then retried
            return balance

    @module(controllers=[Accounts], providers=[Provider(Balances, use_value=table)])
    class App:
        pass

    group = name("g")

    def server() -> KafkaTransport:
        return transport(bootstrap, group_id=group, exactly_once=exactly_once, tables=[table])

    async with create_app(App, transports=[server()]):
        await produce(bootstrap, payments, (b"ann", b'{"id": 1, "total": 10}'))
        await produce(bootstrap, payments, (b"bob", b'{"id": 2, "total": 1}'))
        await read_all(bootstrap, out, 2, settle=0)
    assert len(table) == 0  # dropped when its partitions were given up
    async with create_app(App, transports=[server()]):  # rebuilt from the changelog
        await produce(bootstrap, payments, (b"ann", b'{"id": 3, "total": 13}'))
        found = await read_all(bootstrap, out, 3)
    assert [(r.key, r.value) for r in found] == [
        (b"ann", b"10.0"),
        (b"bob", b"1.0"),
        (b"ann", b"23.0"),
    ]
    with pytest.raises(TransportError, match="inside a Kafka handler call"):
        table.get("ann")

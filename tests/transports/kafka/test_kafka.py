"""The Kafka transport on a real Apache Kafka broker: failures, the wire, clients, relay."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from pydantic import BaseModel

from framework import (
    ClientProxy,
    RemoteError,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
)
from framework.exceptions import RequestTimeoutError
from framework.transports.kafka import KafkaClient, KafkaContext, KafkaRelay, KafkaTransport
from framework.transports.kafka._admin import TopicCreator
from tests.timing import TIME_FACTOR

pytestmark = pytest.mark.kafka

LIMIT = 30 * TIME_FACTOR  # seconds any one wait in these tests may take


class Order(BaseModel):
    id: int
    total: float


def name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def transport(bootstrap: str, **options: Any) -> KafkaTransport:
    settings: dict[str, Any] = {"group_id": name("g"), "start_timeout": LIMIT}
    settings.update(options)
    return KafkaTransport(bootstrap_servers=bootstrap, **settings)


async def produce(bootstrap: str, topic: str, *records: tuple[bytes | None, list[Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value, headers in records:
            key = None if value is not None else b"k"
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read(bootstrap: str, topic: str, count: int) -> list[Any]:
    """The first ``count`` records of ``topic`` (every partition, from the start)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: list[Any] = []
    try:
        async with asyncio.timeout(LIMIT):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(records)
    finally:
        await consumer.stop()
    return found


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        result: int | None = await consumer.committed(TopicPartition(topic, 0))
        return result
    finally:
        await consumer.stop()


class Calls:
    """Handler calls, and an event fired once ``expected`` of them happened."""

    def __init__(self, expected: int) -> None:
        self.items: list[Any] = []
        self.expected = expected
        self.enough = asyncio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        if len(self.items) >= self.expected:
            self.enough.set()

    async def wait(self) -> None:
        async with asyncio.timeout(LIMIT):
            await self.enough.wait()


async def test_failing_and_poison_records_end_in_the_dead_letter_topic(
    engine: str,
    kafka_bootstrap_servers: str,
) -> None:
    bootstrap = kafka_bootstrap_servers
    topic = name("orders")
    attempts = Calls(expected=10_000)
    handled = Calls(expected=3)

    @controller()
    class Orders:
        @event_pattern(topic, max_retries=2, retry_backoff=0.01)
        async def on_order(self, order: Order) -> None:
            attempts.add(order.id)
            if order.id == 1:
                raise RuntimeError("payment service down")
            handled.add(order.id)

    @module(controllers=[Orders])
    class App:
        pass

    group = name("g")
    async with create_app(App, transports=[transport(bootstrap, engine=engine, group_id=group)]):
        await produce(
            bootstrap,
            topic,
            (b'{"id": 0, "total": 1}', []),
            (b'{"id": 1, "total": 1}', [("trace", b"t-1")]),  # always fails
            (b'{"id": "x"}', []),  # does not validate: poison
            (b"\xff\xfe", []),  # not UTF-8 text: poison
            (b'{"id": 2, "total": 1}', []),
            (b'{"id": 3, "total": 1}', []),
        )
        await handled.wait()
        dead = await read(bootstrap, f"{topic}.dlq", 3)
    assert handled.items == [0, 2, 3]  # the partition moved on past every bad record
    assert attempts.items.count(1) == 3  # first call + max_retries
    by_offset = {int(dict(r.headers)["kafka_dlt-original-offset"]): r for r in dead}
    assert sorted(by_offset) == [1, 2, 3]
    failed = dict(by_offset[1].headers)
    assert by_offset[1].value == b'{"id": 1, "total": 1}'
    assert failed["trace"] == b"t-1"
    assert failed["kafka_dlt-original-topic"] == topic.encode()
    assert failed["kafka_dlt-original-partition"] == b"0"
    assert failed["kafka_dlt-exception-fqcn"] == b"builtins.RuntimeError"
    assert failed["kafka_dlt-exception-message"] == b"payment service down"
    assert failed["kafka_deliveryAttempt"] == b"3"
    invalid = dict(by_offset[2].headers)
    assert invalid["kafka_dlt-exception-fqcn"].endswith(b"ValidationError")
    assert invalid["kafka_deliveryAttempt"] == b"1"  # poison: no retries
    assert dict(by_offset[3].headers)["kafka_dlt-exception-fqcn"] == b"builtins.UnicodeDecodeError"
    # Everything is committed on a graceful stop.
    assert await committed(bootstrap, group, topic) == 6


async def test_a_retry_that_succeeds_sends_nothing_to_the_dead_letter_topic(
    engine: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic = name("flaky")
    calls = Calls(expected=3)

    @controller()
    class Flaky:
        @event_pattern(topic, max_retries=5, retry_backoff=0.01, dlq=False)
        async def on_event(self, payload: dict[str, int]) -> None:
            calls.add(payload["n"])
            if len(calls.items) < 3:
                raise ConnectionError("try again")

    @module(controllers=[Flaky])
    class App:
        pass

    async with (
        create_app(App, transports=[transport(kafka_bootstrap_servers, engine=engine)]),
        KafkaClient(engine=engine, bootstrap_servers=kafka_bootstrap_servers) as client,
    ):
        await client.emit(topic, {"n": 7})
        await calls.wait()
    assert calls.items == [7, 7, 7]


async def test_requests_and_replies_match_nestjs_on_the_wire(
    engine: str, kafka_bootstrap_servers: str
) -> None:
    """A hand-made NestJS client request; the raw reply records are checked byte by byte."""
    bootstrap = kafka_bootstrap_servers
    topic = name("rpc")
    reply_topic = f"{topic}.reply"

    @controller()
    class Rpc:
        @message_pattern(topic)
        async def answer(self, payload: Any) -> Any:
            if payload == "fail":
                raise RuntimeError("secret")
            return payload

    @module(controllers=[Rpc])
    class App:
        pass

    creator = TopicCreator(
        bootstrap, partitions=2, replication_factor=None, timeout=LIMIT, options={}
    )
    await creator.ensure([reply_topic])
    await creator.close()

    def request(cid: str) -> list[tuple[str, bytes]]:
        return [
            ("kafka_correlationId", cid.encode()),
            ("kafka_replyTopic", reply_topic.encode()),
            ("kafka_replyPartition", b"1"),
        ]

    async with create_app(App, transports=[transport(bootstrap, engine=engine)]):
        await produce(
            bootstrap,
            topic,
            (b'{"id":1}', request("c1")),
            (b"hello", request("c2")),  # NestJS sends strings raw
            (b"fail", request("c3")),
        )
        replies = await read(bootstrap, reply_topic, 3)
    by_id = {dict(r.headers)["kafka_correlationId"]: r for r in replies}
    assert all(r.partition == 1 for r in replies)  # kafka_replyPartition honoured
    assert by_id[b"c1"].value == b'{"id":1}'
    assert dict(by_id[b"c1"].headers)["kafka_nest-is-disposed"] == b"\x00"
    assert by_id[b"c2"].value == b"hello"  # a string reply is raw text, as NestJS sends it
    err = dict(by_id[b"c3"].headers)
    assert err["kafka_nest-err"] == b'{"status":"error","message":"Internal server error"}'
    assert err["kafka_nest-is-disposed"] == b"\x00"


async def test_streams_mark_the_last_item_and_never_add_a_trailing_null(
    engine: str,
    kafka_bootstrap_servers: str,
) -> None:
    fast, slow = name("fast"), name("slow")

    @controller()
    class Streams:
        @message_pattern(fast)
        async def quick(self, n: int) -> AsyncIterator[int]:
            for i in range(n):
                yield i

        @message_pattern(slow)
        async def live(self, n: int) -> AsyncIterator[int]:
            for i in range(n):
                await asyncio.sleep(0.05)
                yield i

    @module(controllers=[Streams])
    class App:
        pass

    bootstrap = kafka_bootstrap_servers
    async with (
        create_app(App, transports=[transport(bootstrap, engine=engine)]),
        KafkaClient(engine=engine, bootstrap_servers=bootstrap, default_timeout=LIMIT) as client,
    ):
        assert [i async for i in client.stream(fast, 3)] == [0, 1, 2]
        assert [i async for i in client.stream(slow, 3)] == [0, 1, 2]
        assert [i async for i in client.stream(fast, 0)] == []
        assert await client.send(slow, 2) == 1  # send returns a stream's last item
        raw = (await read(bootstrap, f"{fast}.reply", 4))[:4]
    headers = [dict(r.headers) for r in raw]
    # One record per item, the last one marked; then the empty stream's lone end mark.
    assert ["kafka_nest-is-disposed" in h for h in headers] == [False, False, True, True]
    assert ["framework_no-value" in h for h in headers] == [False, False, False, True]


async def test_clients_get_their_own_replies_and_timeouts(
    engine: str, kafka_bootstrap_servers: str
) -> None:
    topic = name("echo")

    @controller()
    class Echo:
        @message_pattern(topic)
        async def echo(self, payload: dict[str, int]) -> dict[str, int]:
            return payload

    @module(controllers=[Echo])
    class App:
        pass

    bootstrap = kafka_bootstrap_servers
    async with (
        create_app(App, transports=[transport(bootstrap, engine=engine)]),
        KafkaClient(engine=engine, bootstrap_servers=bootstrap, default_timeout=LIMIT) as one,
        KafkaClient(engine=engine, bootstrap_servers=bootstrap, default_timeout=LIMIT) as two,
    ):

        async def ask(client: ClientProxy, who: int) -> list[dict[str, int]]:
            return [await client.send(topic, {"who": who, "i": i}) for i in range(15)]

        first, second = await asyncio.gather(ask(one, 1), ask(two, 2))
        assert first == [{"who": 1, "i": i} for i in range(15)]
        assert second == [{"who": 2, "i": i} for i in range(15)]
        with pytest.raises(RequestTimeoutError):
            await one.send(name("nobody"), {}, timeout=1.0)
        with pytest.raises(RemoteError):
            await one.send(topic, "not a dict")


async def test_handlers_see_the_record_in_a_kafka_context(
    engine: str, kafka_bootstrap_servers: str
) -> None:
    topic = name("ctx")
    seen = Calls(expected=1)

    @controller()
    class Ctx:
        @event_pattern(topic)
        async def on_event(self, payload: Order, ctx: KafkaContext) -> None:
            seen.add(ctx)

    @module(controllers=[Ctx])
    class App:
        pass

    bootstrap = kafka_bootstrap_servers
    async with (
        create_app(App, transports=[transport(bootstrap, engine=engine)]),
        KafkaClient(engine=engine, bootstrap_servers=bootstrap) as client,
    ):
        await client.emit(topic, {"id": 1, "total": 2}, key="k-1", headers={"trace": "t"})
        await seen.wait()
    ctx = seen.items[0]
    assert (ctx.topic, ctx.pattern, ctx.transport) == (topic, topic, "kafka")
    assert (ctx.partition, ctx.offset, ctx.key) == (0, 0, b"k-1")
    assert ctx.headers == {"trace": "t"} and ctx.timestamp > 0


async def test_relay_delivers_each_event_to_every_instance_with_one_id(
    engine: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic = name("broadcast")
    got: dict[str, list[tuple[str, bytes, str | None]]] = {"a": [], "b": []}
    both = asyncio.Event()

    def deliver_to(who: str) -> Any:
        async def deliver(pattern: str, payload: bytes, event_id: str | None) -> None:
            got[who].append((pattern, payload, event_id))
            if got["a"] and got["b"]:
                both.set()

        return deliver

    a = KafkaRelay(engine=engine, bootstrap_servers=kafka_bootstrap_servers, topic=topic)
    b = KafkaRelay(engine=engine, bootstrap_servers=kafka_bootstrap_servers, topic=topic)
    assert a.group_id != b.group_id
    await a.start(deliver_to("a"))
    try:
        await b.start(deliver_to("b"))
        try:
            await a.publish("orders.updated", b'{"id":1}')
            async with asyncio.timeout(LIMIT):
                await both.wait()
        finally:
            await b.stop()
    finally:
        await a.stop()
    assert got["a"] == got["b"] == [("orders.updated", b'{"id":1}', "0-0")]


async def test_stop_finishes_the_record_in_hand_and_commits_it(
    engine: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic = name("slow")
    started = Calls(expected=1)
    finished: list[int] = []

    @controller()
    class Slow:
        @event_pattern(topic)
        async def on_event(self, n: int) -> None:
            started.add(n)
            await asyncio.sleep(0.3)
            finished.append(n)

    @module(controllers=[Slow])
    class App:
        pass

    bootstrap = kafka_bootstrap_servers
    group = name("g")
    app = create_app(App, transports=[transport(bootstrap, engine=engine, group_id=group)])
    async with app, KafkaClient(engine=engine, bootstrap_servers=bootstrap) as client:
        for n in range(5):
            await client.emit(topic, n)
        await started.wait()
    # Stopped mid-stream: the record in hand finished, the rest waits for the next owner.
    assert finished and finished == list(range(len(finished)))
    assert len(finished) < 5
    assert await committed(bootstrap, group, topic) == len(finished)


async def test_unreachable_broker_fails_start_with_a_clear_error(engine: str) -> None:
    @controller()
    class Nothing:
        @event_pattern("never")
        async def on_event(self, payload: Any) -> None:
            pass

    @module(controllers=[Nothing])
    class App:
        pass

    broken = KafkaTransport(engine=engine, bootstrap_servers="127.0.0.1:1", request_timeout_ms=1000)
    with pytest.raises(Exception, match=r"127\.0\.0\.1:1"):
        async with asyncio.timeout(LIMIT):
            await create_app(App, transports=[broken]).start()
    with contextlib.suppress(Exception):
        await broken.stop()


async def test_records_with_headers_reach_events_and_requests_alike(
    engine: str,
    kafka_bootstrap_servers: str,
) -> None:
    """A traced producer puts a ``traceparent`` on every record: events and requests on
    one topic are still told apart and served."""
    topic = name("traced")
    events = Calls(expected=2)
    traceparent = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}

    @controller()
    class Traced:
        @message_pattern(topic)
        async def ask(self, order: Order) -> dict[str, int]:
            return {"id": order.id}

        @event_pattern(topic)
        async def on_order(self, order: Order, ctx: KafkaContext) -> None:
            events.add((order.id, ctx.headers.get("traceparent")))

    @module(controllers=[Traced])
    class App:
        pass

    bootstrap = kafka_bootstrap_servers
    async with (
        create_app(App, transports=[transport(bootstrap, engine=engine)]),
        KafkaClient(engine=engine, bootstrap_servers=bootstrap, default_timeout=LIMIT) as client,
    ):
        await client.emit(topic, {"id": 1, "total": 1}, headers=traceparent)
        assert await client.send(topic, {"id": 2, "total": 1}, headers=traceparent) == {"id": 2}
        await client.emit(topic, {"id": 3, "total": 1})
        await events.wait()
    assert events.items == [(1, traceparent["traceparent"]), (3, None)]

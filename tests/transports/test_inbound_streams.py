"""Inbound streams (a handler taking ``AsyncIterator[T]`` or ``Observable[T]``): every
transport feeds each valid event into the handler's stream once, in order, through the
framework's window operators; a bad event stays out (Kafka dead-letters it) and the rest
keep flowing; Kafka commits only what the stream finished."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import ModuleType

import pytest
import reactivex
from pydantic import BaseModel
from reactivex import operators as ops

from framework import ConfigurationError, controller, create_app, event_pattern, injectable, module
from framework.inbound import batched, tumbling
from tests.timing import TIME_FACTOR
from tests.transports.kafka.test_kafka import name, produce, read, transport
from tests.transports.kafka.test_produce import committed

WAIT = 10 * TIME_FACTOR


class Tick(BaseModel):
    n: int


@injectable()
class Seen:
    def __init__(self) -> None:
        self.windows: list[list[int]] = []
        self.changed = asyncio.Event()

    def add(self, items: list[int]) -> None:
        self.windows.append(items)
        self.changed.set()

    @property
    def items(self) -> list[int]:
        return [i for w in self.windows for i in w]

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.items) < count:
                self.changed.clear()
                await self.changed.wait()


@controller()
class TicksController:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @event_pattern("inbound.ticks")
    async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None:
        async for window in tumbling(ticks, seconds=0.05):
            self.seen.add([t.n for t in window.items])


@module(controllers=[TicksController], providers=[Seen])
class TicksModule:
    pass


async def test_every_transport_streams_each_valid_event_once_in_order(
    harness: ModuleType,
) -> None:
    async with harness.serve(TicksModule) as served:
        seen = served.app.get(Seen)
        for i in range(12):
            payload = {"n": "not a number"} if i == 4 else {"n": i}
            await served.client.emit("inbound.ticks", payload, key="k")
        await seen.wait_for(11)
        assert seen.items == [i for i in range(12) if i != 4]


async def test_memory_windows_hold_until_the_handler_pulls_the_next() -> None:
    handled: list[list[int]] = []
    release = asyncio.Event()

    @controller()
    class Slow:
        @event_pattern("inbound.slow")
        async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None:
            async for batch in batched(ticks, max_size=3, max_wait=60):
                await release.wait()  # the handler is busy with this batch
                handled.append([t.n for t in batch])

    @module(controllers=[Slow])
    class SlowModule:
        pass

    async with create_app(SlowModule) as app:
        for i in range(3):
            await app.client.emit("inbound.slow", {"n": i})
        join = asyncio.ensure_future(app.memory.join())
        await asyncio.sleep(0.05 * TIME_FACTOR)
        assert not join.done()  # the batch is in the handler's hands: not done
        release.set()
        await asyncio.wait_for(join, WAIT)
    assert handled == [[0, 1, 2]]


async def test_an_observable_input_runs_the_returned_pipeline() -> None:
    @controller()
    class Rx:
        def __init__(self, seen: Seen) -> None:
            self.seen = seen

        @event_pattern("inbound.rx")
        def on_ticks(self, ticks: reactivex.Observable[Tick]) -> reactivex.Observable[list[int]]:
            return ticks.pipe(
                ops.map(lambda t: t.n),
                ops.filter(lambda n: n % 2 == 0),
                ops.buffer_with_count(2),
                ops.do_action(self.seen.add),
            )

    @module(controllers=[Rx], providers=[Seen])
    class RxModule:
        pass

    async with create_app(RxModule) as app:
        for i in range(9):
            await app.client.emit("inbound.rx", {"n": i})
        seen = app.get(Seen)
        await seen.wait_for(4)
        assert seen.windows == [[0, 2], [4, 6]]
    # Stopping ends the stream: the pipeline completes and hands out what it held.
    assert seen.windows == [[0, 2], [4, 6], [8]]


async def test_a_handler_that_raises_gets_a_new_stream_for_what_follows() -> None:
    calls: list[list[int]] = []

    @controller()
    class Flaky:
        def __init__(self, seen: Seen) -> None:
            self.seen = seen

        @event_pattern("inbound.flaky")
        async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None:
            got: list[int] = []
            calls.append(got)
            async for tick in ticks:
                if tick.n == 2:
                    raise RuntimeError("tick 2 breaks it")
                got.append(tick.n)
                self.seen.add([tick.n])

    @module(controllers=[Flaky], providers=[Seen])
    class FlakyModule:
        pass

    async with create_app(FlakyModule) as app:
        for i in range(5):
            await app.client.emit("inbound.flaky", {"n": i})
        await app.get(Seen).wait_for(4)
    assert calls == [[0, 1], [3, 4]]


async def test_websocket_streams_are_per_connection_and_end_with_it() -> None:
    from framework.transports.websocket import WebSocketClient, WsContext
    from tests.transports.harnesses import websocket

    streams: dict[str, list[list[int]]] = {}
    ended: list[str] = []
    changed = asyncio.Event()

    @controller()
    class PerConnection:
        @event_pattern("inbound.ws")
        async def on_ticks(self, ticks: AsyncIterator[Tick], ctx: WsContext) -> None:
            mine = streams.setdefault(ctx.socket.id, [])
            async for batch in batched(ticks, max_size=2, max_wait=0.05):
                mine.append([t.n for t in batch])
                changed.set()
            ended.append(ctx.socket.id)
            changed.set()

    @module(controllers=[PerConnection])
    class WsModule:
        pass

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                changed.clear()
                await changed.wait()

    async with websocket.serve(WsModule) as served:
        url = served.client.url
        async with WebSocketClient(url) as other:
            for i in range(4):
                await served.client.emit("inbound.ws", {"n": i})
                await other.emit("inbound.ws", {"n": 10 + i})
            await until(lambda: sum(len(b) for w in streams.values() for b in w) == 8)
            assert len(streams) == 2  # one stream per connection, each in its order
            assert sorted([i for b in w for i in b] for w in streams.values()) == [
                [0, 1, 2, 3],
                [10, 11, 12, 13],
            ]
            assert ended == []
        await until(lambda: len(ended) == 1)  # the client left: its stream ended
        await served.client.emit("inbound.ws", {"n": 4})
        await until(lambda: sum(len(b) for w in streams.values() for b in w) == 9)
    assert len(ended) == 2


async def test_stream_inputs_are_for_plain_event_handlers() -> None:
    @controller()
    class Wrong:
        @event_pattern("inbound.wrong", batch=True)
        async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None: ...

    @module(controllers=[Wrong])
    class WrongModule:
        pass

    with pytest.raises(ConfigurationError, match="inbound stream"):
        async with create_app(WrongModule):
            pass


@pytest.mark.kafka
async def test_kafka_dead_letters_a_bad_record_and_commits_what_the_stream_finished(
    kafka_bootstrap_servers: str,
) -> None:
    bootstrap = kafka_bootstrap_servers
    topic = name("inbound")
    seen: list[list[int]] = []
    done = asyncio.Event()

    @controller()
    class Ticks:
        @event_pattern(topic)
        async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None:
            async for batch in batched(ticks, max_size=4, max_wait=0.05):
                seen.append([t.n for t in batch])
                if sum(len(b) for b in seen) >= 29:
                    done.set()

    @module(controllers=[Ticks])
    class App:
        pass

    values = [b'{"n": "x"}' if i == 13 else b'{"n": %d}' % i for i in range(30)]
    await produce(bootstrap, topic, *((v, []) for v in values))
    group = name("g")
    app_transport = transport(bootstrap, auto_offset_reset="earliest", group_id=group)
    async with create_app(App, transports=[app_transport]):
        await asyncio.wait_for(done.wait(), WAIT)
        dead = await read(bootstrap, f"{topic}.dlq", 1)
    # Stopping ended the stream: its last batch was handled, so every offset is done.
    assert await committed(bootstrap, group, topic, 30) == 30
    assert [i for batch in seen for i in batch] == [i for i in range(30) if i != 13]
    assert all(len(b) <= 4 for b in seen)
    assert [dict(r.headers)["kafka_dlt-original-offset"] for r in dead] == [b"13"]


@pytest.mark.kafka
async def test_kafka_replays_the_unfinished_records_of_a_failed_stream(
    kafka_bootstrap_servers: str,
) -> None:
    bootstrap = kafka_bootstrap_servers
    topic = name("inbound")
    calls: list[list[int]] = []
    handled: list[int] = []
    done = asyncio.Event()

    @controller()
    class Ticks:
        @event_pattern(topic, max_retries=1, retry_backoff=0.01)
        async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None:
            got: list[int] = []
            calls.append(got)
            async for batch in batched(ticks, max_size=3, max_wait=0.05):
                got.extend(t.n for t in batch)
                if any(t.n == 4 for t in batch):
                    raise RuntimeError("tick 4 breaks the window")
                handled.extend(t.n for t in batch)
                if 9 in handled:
                    done.set()

    @module(controllers=[Ticks])
    class App:
        pass

    await produce(bootstrap, topic, *((b'{"n": %d}' % i, []) for i in range(10)))
    group = name("g")
    app_transport = transport(bootstrap, auto_offset_reset="earliest", group_id=group)
    async with create_app(App, transports=[app_transport]):
        await asyncio.wait_for(done.wait(), WAIT)
        dead = await read(bootstrap, f"{topic}.dlq", 2)
    # [3, 4, 5] fails twice (the call and its one retry), replayed from offset 3; then
    # the oldest unfinished record, 3, is dead-lettered and the replay skips it; [4, 5,
    # 6] fails twice and 4 goes too; then the stream gets past it.
    assert calls == [[0, 1, 2, 3, 4, 5], [3, 4, 5], [4, 5, 6], [4, 5, 6], [5, 6, 7, 8, 9]]
    assert [dict(r.headers)["kafka_dlt-original-offset"] for r in dead] == [b"3", b"4"]
    assert handled == [0, 1, 2, 5, 6, 7, 8, 9]
    assert await committed(bootstrap, group, topic, 10) == 10

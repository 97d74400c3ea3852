"""Memory-transport specifics: bounded queue, draining on stop, not-running errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from framework import (
    ConfigurationError,
    TransportError,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
)
from framework.transports.memory import MemoryTransport
from tests.timing import TIME_FACTOR

gate = asyncio.Event()
handled: list[int] = []


@controller()
class Slow:
    @event_pattern("work")
    async def work(self, n: int) -> None:
        await gate.wait()
        handled.append(n)


@module(controllers=[Slow])
class App:
    pass


async def test_full_queue_makes_emit_wait_and_stop_drains_everything() -> None:
    gate.clear()
    handled.clear()
    app = create_app(App, transports=[MemoryTransport(max_queue=2)])
    await app.start()
    for n in range(3):  # one in the handler, two in the queue
        await app.client.emit("work", n)
    blocked = asyncio.ensure_future(app.client.emit("work", 3))
    await asyncio.sleep(0.05)
    assert not blocked.done(), "emit should wait while the queue is full"
    gate.set()
    await asyncio.wait_for(blocked, 5 * TIME_FACTOR)
    await app.stop()
    assert handled == [0, 1, 2, 3]


async def test_emit_when_not_running_says_so() -> None:
    app = create_app(App)
    with pytest.raises(TransportError, match="not running"):
        await app.client.emit("work", 1)


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        MemoryTransport(max_queue=0)


produced: list[int] = []
stream_closed = asyncio.Event()


@controller()
class Endless:
    @message_pattern("numbers")
    async def numbers(self, payload: object) -> AsyncIterator[int]:
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            stream_closed.set()


@module(controllers=[Endless])
class StreamApp:
    pass


async def test_a_slow_stream_reader_holds_the_producer_back() -> None:
    produced.clear()
    stream_closed.clear()
    async with create_app(StreamApp, transports=[MemoryTransport(stream_buffer=4)]) as app:
        stream = app.client.stream("numbers", {})
        assert await anext(stream) == 0
        for _ in range(20):  # give the producer every chance to run ahead
            await asyncio.sleep(0)
        # One item read, at most stream_buffer waiting, one in the driver's hands.
        assert len(produced) <= 1 + 4 + 1
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(stream_closed.wait(), 5 * TIME_FACTOR)
    assert len(produced) < 10

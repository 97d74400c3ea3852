"""The stream driver: items, end, errors, back-pressure, cancellation, merged last item."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from framework.messaging.streams import drive, is_stream, iterate, register_stream_kind
from tests.timing import TIME_FACTOR


class Recorder:
    def __init__(self, accept: int | None = None) -> None:
        self.writes: list[tuple[str, Any]] = []
        self.accept = accept
        self.first = asyncio.Event()

    async def item(self, data: bytes) -> bool:
        self.writes.append(("item", data))
        self.first.set()
        return self.accept is None or len(self.writes) < self.accept

    async def end(self, last: bytes | None) -> None:
        self.writes.append(("end", last))

    async def error(self, payload: dict[str, Any]) -> None:
        self.writes.append(("error", payload["message"]))


class Source:
    """An async generator that records how it ended."""

    def __init__(self, items: list[Any], fail: bool = False, gap: float = 0.0) -> None:
        self.items, self.fail, self.gap = items, fail, gap
        self.closed = asyncio.Event()

    async def run(self) -> AsyncIterator[Any]:
        try:
            for item in self.items:
                if self.gap:
                    await asyncio.sleep(self.gap)
                yield item
            if self.fail:
                raise RpcLike("source broke")
        finally:
            self.closed.set()


class RpcLike(Exception):
    pass


def test_recognises_async_iterators_only() -> None:
    class Model(BaseModel):
        x: int

    async def gen() -> AsyncIterator[int]:
        yield 1

    assert is_stream(gen())
    assert not is_stream(Model(x=1))
    assert not is_stream([1, 2])
    assert not is_stream(None)


async def test_items_then_end() -> None:
    src, out = Source([1, {"a": 2}]), Recorder()
    await drive(src.run(), out)
    assert out.writes == [("item", b"1"), ("item", b'{"a":2}'), ("end", None)]
    assert src.closed.is_set()


async def test_error_mid_stream_follows_the_items_and_hides_internals() -> None:
    src, out = Source([1], fail=True), Recorder()
    await drive(src.run(), out, where="test")
    assert out.writes == [("item", b"1"), ("error", "Internal server error")]


async def test_an_item_that_cannot_be_encoded_ends_the_stream_with_an_error() -> None:
    src, out = Source([1, object(), 3]), Recorder()
    await drive(src.run(), out)
    assert out.writes == [("item", b"1"), ("error", "Internal server error")]
    assert src.closed.is_set()


async def test_nan_items_encode_as_null() -> None:
    out = Recorder()
    await drive(Source([float("nan"), {"x": float("inf")}]).run(), out)
    assert out.writes[:2] == [("item", b"null"), ("item", b'{"x":null}')]


async def test_a_receiver_that_is_gone_stops_and_closes_the_source() -> None:
    src, out = Source(list(range(100))), Recorder(accept=3)
    await drive(src.run(), out)
    assert [kind for kind, _ in out.writes] == ["item"] * 3
    assert src.closed.is_set()


async def test_cancelling_the_driver_closes_the_source() -> None:
    src, out = Source(list(range(1000)), gap=0.01), Recorder()
    task = asyncio.create_task(drive(src.run(), out))
    await asyncio.wait_for(out.first.wait(), 5 * TIME_FACTOR)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(src.closed.wait(), 5 * TIME_FACTOR)
    assert ("end", None) not in out.writes


async def test_merge_last_sends_the_final_item_with_the_end() -> None:
    out = Recorder()
    await drive(Source([1, 2, 3]).run(), out, merge_last=1.0 * TIME_FACTOR)
    assert out.writes == [("item", b"1"), ("item", b"2"), ("end", b"3")]
    empty = Recorder()
    await drive(Source([]).run(), empty, merge_last=1.0)
    assert empty.writes == [("end", None)]


async def test_merge_last_does_not_hold_a_live_stream_back() -> None:
    # Item 2 comes later than the wait: item 1 goes on its own; the end follows item 2
    # at once, so they go together.
    out = Recorder()
    await drive(Source([1, 2], gap=0.05 * TIME_FACTOR).run(), out, merge_last=0.001)
    assert out.writes == [("item", b"1"), ("end", b"2")]


async def test_merge_last_writes_the_held_item_before_an_error() -> None:
    out = Recorder()
    await drive(Source([1], fail=True).run(), out, merge_last=1.0 * TIME_FACTOR)
    assert out.writes == [("item", b"1"), ("error", "Internal server error")]


async def test_registered_kinds_are_streams() -> None:
    class Ticks:
        def __init__(self, n: int) -> None:
            self.n = n

    async def ticks(value: Ticks) -> AsyncIterator[int]:
        for i in range(value.n):
            yield i

    register_stream_kind(lambda cls: cls is Ticks, ticks)
    assert is_stream(Ticks(2))
    assert [i async for i in iterate(Ticks(2))] == [0, 1]
    out = Recorder()
    await drive(Ticks(2), out)
    assert out.writes == [("item", b"0"), ("item", b"1"), ("end", None)]

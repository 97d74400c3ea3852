"""``framework.inbound``: when an item of an inbound stream counts as done, through the
operators that hold items (the rule Kafka's commits follow), and back-pressure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from framework import ConfigurationError
from framework.inbound import InboundStream, batched, tumbling


class Done:
    """Collects ``on_done`` reports: the last token reported, and the count."""

    def __init__(self) -> None:
        self.token: Any = None
        self.count = 0

    def __call__(self, token: Any, count: int) -> None:
        self.token = token
        self.count += count


async def fed(n: int, done: Done, size: int = 100) -> InboundStream[int]:
    stream: InboundStream[int] = InboundStream(size, on_done=done)
    for i in range(n):
        assert await stream.put(i, f"t{i}")
    return stream


async def test_an_item_is_done_when_the_next_is_pulled() -> None:
    done = Done()
    stream = await fed(3, done)
    assert await anext(stream) == 0
    assert done.count == 0  # in the handler's hands
    assert await anext(stream) == 1
    assert await anext(stream) == 2
    stream.end()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)  # the stream waits (ends): everything pulled past is done
    assert (done.token, done.count) == ("t2", 3)


async def test_a_batch_is_done_only_when_the_next_batch_is_pulled() -> None:
    done = Done()
    stream = await fed(5, done)
    stream.end()
    batches = batched(stream, max_size=2, max_wait=60)
    assert await anext(batches) == [0, 1]
    assert await anext(batches) == [2, 3]  # (the operator pulled 2 and 3 meanwhile)
    assert (done.token, done.count) == ("t1", 2)  # the first batch, not the second
    assert await anext(batches) == [4]
    assert (done.token, done.count) == ("t3", 4)
    with pytest.raises(StopAsyncIteration):
        await anext(batches)
    assert (done.token, done.count) == ("t4", 5)


async def test_operators_over_operators_hold_until_the_outer_output_is_handled() -> None:
    done = Done()
    stream = await fed(6, done)
    stream.end()
    windows = tumbling(batched(stream, max_size=2, max_wait=60), seconds=60, max_size=2)
    first = await anext(windows)
    assert first.items == [[0, 1], [2, 3]]
    assert done.count == 0  # all four are in the window in the handler's hands
    rest = await anext(windows)
    assert rest.items == [[4, 5]]
    assert (done.token, done.count) == ("t3", 4)  # the first window, all of it
    with pytest.raises(StopAsyncIteration):
        await anext(windows)
    assert (done.token, done.count) == ("t5", 6)


async def test_a_skipped_message_is_done_with_the_item_before_it() -> None:
    done = Done()
    stream: InboundStream[int] = InboundStream(10, on_done=done)
    stream.skip("bad0")  # nothing before it: done at once
    assert (done.token, done.count) == ("bad0", 1)
    await stream.put(1, "t1")
    stream.skip("bad2")
    await stream.put(3, "t3")
    assert await anext(stream) == 1
    assert await anext(stream) == 3
    assert stream.oldest == "t1"  # (reports come in runs, and when the stream waits)
    assert await stream.pull(0) == (False, None)
    assert (done.token, done.count) == ("t3", 4)  # bad0, 1, bad2 (with 1), 3
    assert stream.oldest is None


async def test_a_discarded_stream_reports_nothing_its_operators_release() -> None:
    done = Done()
    stream = await fed(4, done)
    batches = batched(stream, max_size=3, max_wait=60)
    assert await anext(batches) == [0, 1, 2]
    stream.discard()  # the handler failed with this batch in hand
    await batches.aclose()  # its operator closes and releases its hold
    assert done.count == 0  # the batch is replayed, not committed
    assert stream.oldest == "t0"


async def test_put_waits_while_the_buffer_is_full() -> None:
    stream: InboundStream[int] = InboundStream(2)
    await stream.put(0)
    await stream.put(1)
    third = asyncio.ensure_future(stream.put(2))
    await asyncio.sleep(0)
    assert not third.done()
    assert await anext(stream) == 0
    assert await anext(stream) == 1  # down to half a buffer: the producer may go on
    assert await asyncio.wait_for(third, 1)
    stream.end()
    assert not await stream.put(3)  # ended: not taken


async def test_limits_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        InboundStream(0)
    stream: InboundStream[int] = InboundStream(1)
    with pytest.raises(ConfigurationError):
        batched(stream, 0, 1)
    with pytest.raises(ConfigurationError):
        tumbling(stream, 0)


async def test_a_window_closing_while_its_source_is_midway_keeps_that_source_held() -> None:
    done = Done()
    stream: InboundStream[int] = InboundStream(100, on_done=done)
    windows = tumbling(batched(stream, max_size=3, max_wait=60), seconds=0.2)
    for i in range(4):
        await stream.put(i, f"t{i}")
    first = await anext(windows)  # closed by the clock; item 3 waits in an open batch
    assert first.items == [[0, 1, 2]]
    second = asyncio.ensure_future(anext(windows))
    await asyncio.sleep(0)
    for i in (4, 5):
        await stream.put(i, f"t{i}")
    assert (await asyncio.wait_for(second, 5)).items == [[3, 4, 5]]
    # The first window is done; item 3, pulled before the second window began, is not.
    assert (done.token, done.count) == ("t2", 3)
    stream.end()
    with pytest.raises(StopAsyncIteration):
        await anext(windows)
    assert (done.token, done.count) == ("t5", 6)

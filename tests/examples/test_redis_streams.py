"""The Redis Streams example transport's own promises, on a real redis-server: entries are
acknowledged only after their handler finished, failed and orphaned entries come back,
a group shares its work, and replies find their own client. (The behaviour every
transport shares is in tests/transports/test_contract.py.)"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest

from framework import (
    Provider,
    RequestTimeoutError,
    TransportError,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
)
from tests.redis_server import RedisServer, redis_package_or_skip, start_or_skip
from tests.timing import TIME_FACTOR

redis_package_or_skip()  # before importing redis (skips, or fails under REQUIRE_REDIS=1)

from redis.asyncio import Redis  # noqa: E402

from examples.redis_streams import (  # noqa: E402
    RedisStreamsClient,
    RedisStreamsContext,
    RedisStreamsTransport,
)
from examples.redis_streams.wire import request_fields  # noqa: E402

pytestmark = pytest.mark.redis

LIMIT = 10 * TIME_FACTOR  # seconds any one wait may take
CLAIM_IDLE = 0.3 * TIME_FACTOR  # short, so retries come back within a test


class Tracker:
    """What handlers saw, and events tests can await."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.seen: list[Any] = []
        self.deliveries: list[int] = []
        self.first = asyncio.Event()
        self.changed = asyncio.Event()
        self.other: Tracker | None = None
        self.closed = asyncio.Event()

    def add(self, value: Any, deliveries: int = 1) -> None:
        self.seen.append(value)
        self.deliveries.append(deliveries)
        self.first.set()
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(LIMIT):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()


@controller()
class JobsController:
    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    @event_pattern("jobs.flaky")
    async def flaky(self, job: int, ctx: RedisStreamsContext) -> None:
        self.tracker.add(job, ctx.deliveries)
        if ctx.deliveries == 1:
            raise RuntimeError("first delivery fails")

    @event_pattern("jobs.broken")
    async def broken(self, job: int) -> None:
        self.tracker.add(job)
        raise RuntimeError("always fails")

    @event_pattern("jobs.shared")
    async def shared(self, job: int) -> None:
        self.tracker.add(job)
        # Hold this consumer until the other one handled something: the next entries
        # can then only go to the other consumer, so both must get work.
        if self.tracker.other is not None:
            async with asyncio.timeout(LIMIT):
                await self.tracker.other.first.wait()

    @message_pattern("calc.double")
    async def double(self, n: int) -> int:
        await asyncio.sleep(0)  # let other requests interleave
        return n * 2

    @message_pattern("calc.count")
    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @message_pattern("calc.record")
    async def record(self, n: int) -> int:
        self.tracker.add(n)
        return n

    @message_pattern("ticks.watch")
    async def watch(self, start: int) -> AsyncIterator[int]:
        try:
            i = start
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.005)
        finally:
            self.tracker.closed.set()

    @message_pattern("ticks.late")
    async def late(self, start: int) -> AsyncIterator[int]:
        try:
            await asyncio.sleep(LIMIT)  # longer than the caller waits for a first item
        finally:
            self.tracker.closed.set()
        return _one(start)


async def _one(value: int) -> AsyncIterator[int]:
    yield value


@module(controllers=[JobsController])
class JobsModule:
    pass


def app_on(url: str, prefix: str, tracker: Tracker, **options: Any) -> Any:
    options = {"prefix": prefix, "group": "jobs", "claim_idle": CLAIM_IDLE, **options}
    return create_app(
        JobsModule,
        transports=[RedisStreamsTransport(url, **options)],
        providers=[Provider(Tracker, use_value=tracker)],
    )


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def pending(redis: Redis, key: str, group: str = "jobs") -> int:
    summary = await redis.xpending(key, group)
    return int(summary["pending"])


async def test_a_failed_event_stays_pending_and_is_redelivered(
    redis_url: str, redis: Redis, prefix: str
) -> None:
    tracker = Tracker()
    async with (
        app_on(redis_url, prefix, tracker),
        RedisStreamsClient(redis_url, prefix=prefix) as client,
    ):
        await client.emit("jobs.flaky", 7)
        await tracker.wait_for(1)
        # The handler raised: no XACK, the entry waits in the pending list.
        assert await pending(redis, f"{prefix}jobs.flaky") == 1
        await tracker.wait_for(2)  # reclaimed after claim_idle, handled again
    assert tracker.seen == [7, 7]
    assert tracker.deliveries == [1, 2]
    assert await pending(redis, f"{prefix}jobs.flaky") == 0  # acknowledged after success


async def test_entries_of_a_crashed_consumer_are_claimed(
    redis_url: str, redis: Redis, prefix: str
) -> None:
    key = f"{prefix}jobs.flaky"
    await redis.xgroup_create(key, "jobs", id="$", mkstream=True)
    await redis.xadd(key, {"data": b"41"})
    # A consumer reads the entry and dies before acknowledging it.
    taken: Any = await redis.xreadgroup("jobs", "crashed", {key: ">"}, count=10)
    assert len(taken[0][1]) == 1
    tracker = Tracker()
    async with app_on(redis_url, prefix, tracker):
        await tracker.wait_for(1)
    assert tracker.seen == [41]
    assert tracker.deliveries == [2]  # the crashed consumer's delivery counts
    assert await pending(redis, key) == 0


async def test_an_entry_failing_max_deliveries_times_is_dead_lettered(
    redis_url: str, redis: Redis, prefix: str
) -> None:
    tracker = Tracker()
    dead = f"{prefix}dlq:jobs.broken"
    async with (
        app_on(redis_url, prefix, tracker, max_deliveries=2),
        RedisStreamsClient(redis_url, prefix=prefix) as client,
    ):
        await client.emit("jobs.broken", 5, headers={"trace": "abc"})
        # Blocks until the dead-letter entry is written (bounded by LIMIT).
        found: Any = await redis.xread({dead: "0-0"}, count=1, block=int(LIMIT * 1000))
    assert found, "nothing reached the dead-letter stream"
    fields = found[0][1][0][1]
    assert fields[b"data"] == b"5"
    assert fields[b"headers"] == b'{"trace": "abc"}'
    assert fields[b"deliveries"] == b"2"
    assert fields[b"source"] == f"{prefix}jobs.broken".encode()
    assert tracker.seen == [5, 5]  # max_deliveries runs, no more
    assert await pending(redis, f"{prefix}jobs.broken") == 0


async def test_two_consumers_in_one_group_split_the_work(redis_url: str, prefix: str) -> None:
    first, second = Tracker("a"), Tracker("b")
    first.other, second.other = second, first
    options = {"batch_size": 1}
    async with (
        app_on(redis_url, prefix, first, **options),
        app_on(redis_url, prefix, second, **options),
        RedisStreamsClient(redis_url, prefix=prefix) as client,
    ):
        for job in range(20):
            await client.emit("jobs.shared", job)
        async with asyncio.timeout(LIMIT):
            while len(first.seen) + len(second.seen) < 20:
                first.changed.clear()
                second.changed.clear()
                waits = [asyncio.ensure_future(t.changed.wait()) for t in (first, second)]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
    assert first.seen and second.seen, "one consumer got all the work"
    assert sorted(first.seen + second.seen) == list(range(20))  # each job exactly once


async def test_requests_from_two_clients_get_their_own_replies(
    redis_url: str, redis: Redis, prefix: str
) -> None:
    one = RedisStreamsClient(redis_url, prefix=prefix)
    two = RedisStreamsClient(redis_url, prefix=prefix)
    async with app_on(redis_url, prefix, Tracker(), workers=2), one, two:
        replies = await asyncio.gather(
            *(one.send("calc.double", n) for n in range(25)),
            *(two.send("calc.double", 100 + n) for n in range(25)),
        )
        streams = await asyncio.gather(
            *(collect(client.stream("calc.count", n)) for client in (one, two) for n in (3, 5))
        )
        keys = [one.reply_key, two.reply_key]
        assert await redis.exists(*keys) == 2
    assert replies == [n * 2 for n in range(25)] + [(100 + n) * 2 for n in range(25)]
    assert streams == [[0, 1, 2], [0, 1, 2, 3, 4]] * 2
    assert await redis.exists(*keys) == 0  # close() removes the reply streams


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


async def test_a_stream_stops_when_its_caller_leaves(redis_url: str, prefix: str) -> None:
    tracker = Tracker()
    async with (
        app_on(redis_url, prefix, tracker),
        RedisStreamsClient(redis_url, prefix=prefix) as client,
    ):
        got = []
        async with aclosing(client.stream("ticks.watch", 10)) as ticks:  # type: ignore[type-var]
            async for item in ticks:
                got.append(item)
                if len(got) == 3:
                    break
        assert got == [10, 11, 12]
        # The client deleted its stream reply key: the service stops the handler.
        async with asyncio.timeout(LIMIT):
            await tracker.closed.wait()


async def test_a_request_whose_caller_gave_up_is_not_handled(
    redis_url: str, redis: Redis, prefix: str
) -> None:
    tracker = Tracker()
    client = RedisStreamsClient(redis_url, prefix=prefix)
    async with app_on(redis_url, prefix, tracker), client:
        expired = int((time.time() - 1) * 1000)
        fields = request_fields(b"1", "old", client.reply_key, expired)
        await redis.xadd(f"{prefix}calc.record", fields)  # type: ignore[arg-type]
        # One worker handles a stream in order: when this reply arrives, the expired
        # request before it has been looked at.
        assert await client.send("calc.record", 2) == 2
    assert tracker.seen == [2]


async def test_a_stream_slower_to_start_than_its_caller_waits_is_cancelled_and_acked(
    redis_url: str, redis: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = Tracker()
    async with (
        app_on(redis_url, prefix, tracker),
        RedisStreamsClient(redis_url, prefix=prefix) as client,
    ):
        with pytest.raises(RequestTimeoutError):
            async with aclosing(client.stream("ticks.late", 1, timeout=0.2 * TIME_FACTOR)) as s:  # type: ignore[type-var]
                async for _ in s:
                    pass
        async with asyncio.timeout(LIMIT):
            await tracker.closed.wait()  # cancelled at the caller's deadline, not after LIMIT
            while await pending(redis, f"{prefix}ticks.late"):  # noqa: ASYNC110 - a Redis count
                await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_service_and_client_recover_after_redis_restarts() -> None:
    server = start_or_skip(RedisServer())  # its own server: this test kills it
    try:
        url = server.url
        client = RedisStreamsClient(url, prefix="r:", default_timeout=1 * TIME_FACTOR)
        async with app_on(url, "r:", Tracker()), client:
            assert await client.send("calc.double", 1) == 2
            server.restart()  # empty: the group and the reply stream are gone
            # Recovery has no event to await from here: retry, bounded by LIMIT.
            deadline = time.monotonic() + LIMIT
            while True:
                try:
                    assert await client.send("calc.double", 2) == 4
                    break
                except (RequestTimeoutError, TransportError):
                    if time.monotonic() > deadline:
                        raise
    finally:
        server.stop()

"""``Lanes`` with a fake consumer: batches in order, watermark commits, rebalances."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition  # type: ignore[import-untyped]
from aiokafka.errors import KafkaConnectionError  # type: ignore[import-untyped]

from framework.exceptions import ConfigurationError
from framework.transports.kafka._lanes import Lane, Lanes
from tests.timing import TIME_FACTOR
from tests.transports.kafka.fakes import FakeConsumer, Record

TP0, TP1 = TopicPartition("orders", 0), TopicPartition("orders", 1)
LIMIT = 10 * TIME_FACTOR


def batch(tp: TopicPartition, start: int, count: int) -> list[Record]:
    return [Record(tp.topic, tp.partition, start + i) for i in range(count)]


class Handler:
    """Notes every record; a partition in ``blocked`` waits for ``release``."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.blocked: set[int] = set()
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.stop_at: int | None = None  # offset where a "bug" stops the batch

    async def __call__(self, lane: Lane, records: list[Any]) -> int:
        self.started.set()
        if lane.tp.partition in self.blocked:
            await self.release.wait()
        finished = 0
        for record in records:
            if not lane.open or record.offset == self.stop_at:
                break
            self.seen.append((record.partition, record.offset))
            finished += 1
        return finished


def lanes(consumer: FakeConsumer, handler: Handler, **options: Any) -> Lanes:
    settings: dict[str, Any] = {"shutdown_timeout": LIMIT, "start_timeout": LIMIT}
    settings.update(options)
    return Lanes(consumer, handler, **settings)


async def settle(found: Lanes, *partitions: TopicPartition) -> None:
    """Wait for the running batches (of ``partitions``, or all)."""
    chosen = [found._lanes[tp] for tp in partitions] or list(found._lanes.values())
    async with asyncio.timeout(LIMIT):
        await asyncio.gather(*(lane.task for lane in chosen if lane.task is not None))


async def test_batches_run_in_order_and_the_watermark_is_committed() -> None:
    consumer, handler = FakeConsumer(TP0, TP1), Handler()
    found = lanes(consumer, handler)
    found.assigned({TP0, TP1})
    await found.take({TP0: batch(TP0, 0, 3), TP1: batch(TP1, 10, 2)})
    await found.take({TP0: batch(TP0, 3, 2)})
    await settle(found)
    assert [o for p, o in handler.seen if p == 0] == [0, 1, 2, 3, 4]
    await found.commit()
    assert consumer.commits[-1] == {TP0: 5, TP1: 12}
    consumer.highwaters = {TP0: 9, TP1: 12}
    assert found.lag() == {("orders", 0): 4, ("orders", 1): 0}


async def test_one_partition_is_handled_in_the_fetch_task() -> None:
    consumer, handler = FakeConsumer(TP0), Handler()
    found = lanes(consumer, handler)
    found.assigned({TP0})
    await found.take({TP0: batch(TP0, 0, 2)})  # returns only once the batch is done
    assert handler.seen == [(0, 0), (0, 1)]


async def test_a_revoked_partition_finishes_the_record_in_hand_then_commits() -> None:
    consumer, handler = FakeConsumer(TP0, TP1), Handler()
    handler.blocked = {0}
    found = lanes(consumer, handler)
    found.assigned({TP0, TP1})
    await found.take({TP0: batch(TP0, 0, 3), TP1: batch(TP1, 0, 1)})
    await found.take({TP0: batch(TP0, 3, 3)})  # waits behind the running batch
    await settle(found, TP1)
    revoking = asyncio.create_task(found.revoked({TP0}))
    await asyncio.sleep(0.01)
    assert not revoking.done()  # waits for the batch in hand
    handler.release.set()
    async with asyncio.timeout(LIMIT):
        await revoking
    # The running batch stopped at once (its lane closed); the waiting one was dropped.
    assert [o for p, o in handler.seen if p == 0] == []
    assert {TP0: 0} in consumer.commits  # the seeded start, for the next owner
    assert found.tracker.watermark(TP0) is None  # forgotten: not ours any more
    consumer.assigned.discard(TP0)
    await found.commit()
    assert consumer.commits[-1] == {TP1: 1}


async def test_progress_of_a_revoked_partition_is_committed_before_hand_over() -> None:
    consumer, handler = FakeConsumer(TP0, TP1), Handler()
    found = lanes(consumer, handler)
    found.assigned({TP0, TP1})
    await found.take({TP0: batch(TP0, 0, 4)})
    await settle(found)
    await found.revoked({TP0, TP1})
    assert consumer.commits == [{TP0: 4, TP1: 0}]


async def test_a_full_partition_is_not_fetched_until_its_lane_catches_up() -> None:
    consumer, handler = FakeConsumer(TP0, TP1), Handler()
    handler.blocked = {0}
    found = lanes(consumer, handler, max_pending_batches=1)
    found.assigned({TP0, TP1})
    assert found.fetchable() is None
    await found.take({TP0: batch(TP0, 0, 1)})
    await found.take({TP0: batch(TP0, 1, 1)})
    assert found.fetchable() == [TP1]
    handler.release.set()
    async with asyncio.timeout(LIMIT):
        await found.wait_for_room(LIMIT)
    assert found.fetchable() is None


async def test_a_batch_stopped_by_a_bug_is_replayed_from_the_unfinished_record() -> None:
    consumer, handler = FakeConsumer(TP0), Handler()
    handler.stop_at = 2
    found = lanes(consumer, handler)
    found.assigned({TP0})
    await found.take({TP0: batch(TP0, 0, 4)})
    assert consumer.seeks == [(TP0, 2)]
    await found.commit()
    assert consumer.commits[-1] == {TP0: 2}


async def test_a_failed_commit_is_retried_with_the_next_one() -> None:
    consumer, handler = FakeConsumer(TP0), Handler()
    found = lanes(consumer, handler)
    found.assigned({TP0})
    await found.take({TP0: batch(TP0, 0, 3)})
    consumer.commit_failures = [KafkaConnectionError()]
    await found.commit()
    assert consumer.commits == []
    await found.commit()
    assert consumer.commits == [{TP0: 3}]


async def test_commits_come_every_commit_every_records() -> None:
    consumer, handler = FakeConsumer(TP0, TP1), Handler()
    found = lanes(consumer, handler, commit_every=5, commit_interval=LIMIT)
    found.assigned({TP0, TP1})
    committer = asyncio.create_task(found.committer())
    try:
        await found.take({TP0: batch(TP0, 0, 5)})
        async with asyncio.timeout(LIMIT / 2):  # well before commit_interval
            await consumer.committed.wait()
        assert consumer.commits[0][TP0] == 5
    finally:
        committer.cancel()


async def test_new_partitions_pin_their_start_and_mark_ready() -> None:
    consumer, handler = FakeConsumer(TP0), Handler()
    consumer.positions[TP0] = 70
    found = lanes(consumer, handler)
    found.assigned({TP0})
    async with asyncio.timeout(LIMIT):
        await found.ready.wait()
    await found.commit()
    assert consumer.commits == [{TP0: 70}]


def test_nonsense_limits_are_configuration_errors() -> None:
    for options in ({"max_concurrency": 0}, {"max_pending_batches": 0}, {"commit_interval": 0}):
        with pytest.raises(ConfigurationError):
            lanes(FakeConsumer(), Handler(), **options)

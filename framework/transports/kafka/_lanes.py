"""Per-partition lanes and group membership: assignment, revocation and commits.

A *lane* is one assigned partition: the task handling its batch in offset order and the
batches fetched for it that wait their turn. ``Lanes`` owns every lane, the
``OffsetTracker`` of their progress, the commits of it, and the rebalance listener: a
revoked partition's progress is committed before it is given up. What a batch means is
not its business: it is given a ``handle(lane, records)`` that says how many records it
finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import ConsumerRebalanceListener  # type: ignore[import-untyped]
from aiokafka.errors import CommitFailedError, KafkaError  # type: ignore[import-untyped]

from framework.exceptions import ConfigurationError
from framework.transports.kafka._admin import finish_tasks
from framework.transports.kafka._offsets import OffsetTracker

logger = logging.getLogger("framework.kafka")

PartitionsHook = Callable[[set[Any]], Awaitable[None]]
"""Told of partitions as they are assigned (before their lanes open) or revoked (after
their lanes ended)."""

BatchHandler = Callable[["Lane", list[Any]], Awaitable[int]]
"""Handles a lane's batch in offset order; returns how many records, from the first,
are finished (fewer than all only when the lane closed or a bug stopped the batch), or
``DEFERRED``."""

DEFERRED = -1
"""What a ``BatchHandler`` returns when its records finish later, in the lane's
``background`` tasks (an inbound stream): they report with ``Lane.done``."""


class Lane:
    """One assigned partition: its running batch task and the batches waiting for it.

    ``acks`` holds the broker acks of replies sent for the batch in hand (awaited
    together when it ends). ``background`` holds tasks that finish the lane's records
    after their batch handler returned (``DEFERRED``): revocation and ``close`` wait for
    them as for the batch in hand.
    """

    __slots__ = (
        "_lanes",
        "acks",
        "background",
        "backlog",
        "closed",
        "fetched",
        "open",
        "task",
        "tp",
    )

    def __init__(self, tp: Any, lanes: Lanes | None = None) -> None:
        self.tp = tp
        self._lanes = lanes
        self.background: set[asyncio.Task[Any]] = set()
        self.task: asyncio.Future[None] | None = None
        self.backlog: deque[list[Any]] = deque()
        self.open = True
        self.fetched = False
        self.closed = asyncio.Event()
        self.acks: list[asyncio.Future[Any]] = []

    def close(self) -> None:
        """Stop after the record in hand; waiting batches are dropped (redelivered)."""
        self.open = False
        self.backlog.clear()
        self.closed.set()

    def done(self, next_offset: int) -> None:
        """Every record before ``next_offset`` is finished (for ``DEFERRED`` batches;
        in offset order)."""
        if self._lanes is not None:
            self._lanes.finish(self, next_offset)

    def rewind(self, offset: int) -> None:
        """Fetch again from ``offset`` (the first unfinished record, after a deferred
        handler failed): waiting batches are dropped."""
        if self._lanes is not None and self.open:
            self._lanes.rewind(self, offset)

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; False if the lane closed meanwhile."""
        if not self.open:
            return False
        try:
            async with asyncio.timeout(seconds):
                await self.closed.wait()
        except TimeoutError:
            return True
        return False


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, lanes: Lanes) -> None:
        self.lanes = lanes

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.lanes.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = set(assigned)
        if self.lanes.prepare is not None:
            await self.lanes.prepare(partitions)
        self.lanes.assigned(partitions)


class Lanes:
    """Every assigned partition's lane, their watermarks and the commits of them.

    Args:
        consumer: the group's ``AIOKafkaConsumer`` (``assignment``, ``position``,
            ``seek``, ``commit`` are used).
        handle: runs one batch of a lane (see ``BatchHandler``).
        commit_every: finished records after which offsets are committed.
        commit_interval: seconds between commits of pending progress.
        commit_timeout: seconds one commit may take before it is retried later.
        max_concurrency: partition batches handled at the same time.
        max_pending_batches: fetched batches waiting per partition before the partition
            is not fetched from.
        shutdown_timeout: seconds a revocation or ``close`` waits for running batches
            before cancelling them.
        start_timeout: seconds the positions of newly assigned partitions may take.
        commits: commit the watermarks through the consumer; ``False`` when the batch
            handler commits offsets itself (in its transactions): the watermarks then
            only measure lag.
        prepare: awaited with newly assigned partitions before their lanes open.
        release: awaited with revoked partitions once their lanes ended.

    Raises:
        ConfigurationError: a limit below 1, or a non-positive interval.
    """

    def __init__(
        self,
        consumer: Any,
        handle: BatchHandler,
        *,
        commit_every: int = 1000,
        commit_interval: float = 1.0,
        commit_timeout: float = 10.0,
        max_concurrency: int = 64,
        max_pending_batches: int = 2,
        shutdown_timeout: float = 30.0,
        start_timeout: float = 30.0,
        commits: bool = True,
        prepare: PartitionsHook | None = None,
        release: PartitionsHook | None = None,
    ) -> None:
        if max_concurrency < 1 or max_pending_batches < 1:
            raise ConfigurationError("max_concurrency and max_pending_batches must be at least 1")
        if commit_interval <= 0:
            raise ConfigurationError(f"commit_interval must be positive, not {commit_interval}")
        self._consumer = consumer
        self._handle = handle
        self.tracker: OffsetTracker[Any] = OffsetTracker(commit_every=commit_every)
        self.commit_interval = commit_interval
        self.commit_timeout = commit_timeout
        self.max_pending_batches = max_pending_batches
        self.shutdown_timeout = shutdown_timeout
        self.start_timeout = start_timeout
        self.commits = commits
        self.prepare = prepare
        self.release = release
        self.ready = asyncio.Event()
        """Set once the first assignment's positions are known."""
        self._lanes: dict[Any, Lane] = {}
        self._slots = asyncio.Semaphore(max_concurrency)
        self._full: set[Any] = set()
        self._room = asyncio.Event()
        self._single = False
        self._commit_wanted = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def listener(self) -> ConsumerRebalanceListener:
        """The rebalance listener to subscribe with."""
        return _Listener(self)

    # -- fetched batches -------------------------------------------------------------

    def fetchable(self) -> list[Any] | None:
        """The partitions to fetch for, or ``None`` for all: partitions with
        ``max_pending_batches`` batches waiting are left out (their next records stay
        in aiokafka's buffer)."""
        if not self._full:
            return None
        return [tp for tp in self._consumer.assignment() if tp not in self._full]

    async def wait_for_room(self, timeout: float) -> None:
        """Wait until a full partition made room (or ``timeout`` seconds)."""
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._room.wait()

    async def take(self, batches: Mapping[Any, list[Any]]) -> None:
        """Hand each partition's fetched batch to its lane (``getmany``'s result)."""
        lanes = self._lanes
        for tp, records in batches.items():
            lane = lanes.get(tp)
            if lane is None:
                lane = lanes[tp] = Lane(tp, self)
            if not lane.fetched:
                # Pin where this member started, so that if it loses the partition
                # before finishing anything, the next owner starts here too.
                lane.fetched = True
                self.tracker.seed(tp, records[0].offset)
            if lane.task is None and self._single:
                # One partition assigned: nothing could run beside it, so handle the
                # batch in the caller's task and save a task hop per batch.
                await self._inline(lane, records)
            elif lane.task is None:
                lane.task = asyncio.create_task(self._drain(lane, records))
            else:
                lane.backlog.append(records)
                if len(lane.backlog) >= self.max_pending_batches:
                    self._full.add(tp)

    async def _inline(self, lane: Lane, records: list[Any]) -> None:
        # A future stands for the batch, so revocation and close can wait for it.
        lane.task = done = asyncio.get_running_loop().create_future()
        try:
            await self._run(lane, records)
        finally:
            lane.task = None
            if not done.done():
                done.set_result(None)

    async def _drain(self, lane: Lane, records: list[Any]) -> None:
        """Handle ``records`` and every batch queued behind them, in order."""
        try:
            while True:
                async with self._slots:
                    await self._run(lane, records)
                if not lane.open or not lane.backlog:
                    return
                records = lane.backlog.popleft()
                if lane.tp in self._full:
                    self._full.discard(lane.tp)
                    self._room.set()
        finally:
            lane.task = None

    async def _run(self, lane: Lane, records: list[Any]) -> None:
        finished = await self._handle(lane, records)
        if finished == DEFERRED:
            return
        if finished < len(records) and lane.open:
            # A bug of ours stopped the batch, not a handler failure: replay from the
            # unfinished record rather than let later commits skip it.
            self.rewind(lane, records[finished].offset)
        if finished and self.tracker.done(lane.tp, records[finished - 1].offset + 1, finished):
            self._commit_wanted.set()

    def finish(self, lane: Lane, next_offset: int) -> None:
        """``Lane.done``: records before ``next_offset`` finished after their batch."""
        position = self.tracker.watermark(lane.tp)
        count = 0 if position is None else max(next_offset - position, 0)
        if self.tracker.done(lane.tp, next_offset, count):
            self._commit_wanted.set()

    def rewind(self, lane: Lane, offset: int) -> None:
        """Drop ``lane``'s waiting batches and fetch its partition again from ``offset``."""
        lane.backlog.clear()
        if lane.tp in self._full:
            self._full.discard(lane.tp)
            self._room.set()
        with contextlib.suppress(KafkaError):
            self._consumer.seek(lane.tp, offset)

    # -- group membership ------------------------------------------------------------

    def assigned(self, partitions: set[Any]) -> None:
        """Open lanes for newly assigned partitions and pin their positions."""
        self._single = len(partitions) == 1
        for tp in partitions:
            if tp not in self._lanes:
                self._lanes[tp] = Lane(tp, self)
        task = asyncio.create_task(self._seed(partitions))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _seed(self, partitions: set[Any]) -> None:
        """Pin each new partition's starting position (committed with the next commit),
        so a later owner never skips records this member was about to fetch (with
        ``auto_offset_reset="latest"``, a partition without a committed offset would
        otherwise start wherever its end is when the next owner looks)."""
        try:
            async with asyncio.timeout(self.start_timeout):
                for tp in partitions:
                    with contextlib.suppress(KafkaError):
                        position = await self._consumer.position(tp)
                        lane = self._lanes.get(tp)
                        # Once records were fetched, the position is past unfinished
                        # ones: the first batch pinned the start instead.
                        if lane is not None and not lane.fetched:
                            self.tracker.seed(tp, position)
        except TimeoutError:
            logger.warning("Kafka positions of %s not known within the start timeout", partitions)
        self.ready.set()

    async def revoked(self, partitions: set[Any]) -> None:
        """Stop the revoked partitions' lanes after the record in hand, then commit
        their progress and forget it (it belongs to the next owner)."""
        self._single = False
        lanes = [self._lanes.pop(tp) for tp in partitions if tp in self._lanes]
        for lane in lanes:
            lane.close()
        self._full.difference_update(partitions)
        self._room.set()
        await finish_tasks(_work(lanes), self.shutdown_timeout)
        if partitions:
            await self.commit(partitions)
            self.tracker.forget(partitions)
            if self.release is not None:
                await self.release(partitions)

    async def close(self) -> None:
        """Stop every lane after the record in hand (up to ``shutdown_timeout``, then
        cancelled), and the positions lookups still running."""
        lanes = list(self._lanes.values())
        for lane in lanes:
            lane.close()
        self._room.set()
        await finish_tasks(_work(lanes), self.shutdown_timeout)
        await finish_tasks(list(self._tasks), 0)
        self._lanes.clear()

    # -- commits ---------------------------------------------------------------------

    async def committer(self) -> None:
        """Commit watermarks every ``commit_every`` records or ``commit_interval``
        seconds, until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.commit_interval):
                    await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self.commit()

    async def commit(self, partitions: set[Any] | None = None) -> None:
        """Commit the pending watermarks (all, or of ``partitions``) that are still
        assigned; a failed commit keeps them for the next one."""
        consumer = self._consumer
        async with self._commit_lock:
            offsets = self.tracker.take(partitions)
            if not self.commits:
                return
            assigned = consumer.assignment()
            offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
            if not offsets:
                return
            try:
                async with asyncio.timeout(self.commit_timeout):
                    await consumer.commit(offsets)
            except CommitFailedError as exc:
                logger.warning(
                    "Kafka commit refused after a rebalance (%s); the new owner "
                    "may see some records again",
                    exc,
                )
            except (KafkaError, TimeoutError) as exc:
                self.tracker.restore(offsets)
                logger.warning("Kafka commit failed (%r); will retry", exc)

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet handled per assigned partition (see ``KafkaTransport.lag``)."""
        consumer = self._consumer
        found = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            done = self.tracker.watermark(tp)
            if high is not None and done is not None:
                found[(tp.topic, tp.partition)] = max(high - done, 0)
        return found


def _work(lanes: list[Lane]) -> list[asyncio.Future[Any]]:
    """What a revocation or ``close`` waits for: batches in hand and background work."""
    found: list[asyncio.Future[Any]] = [lane.task for lane in lanes if lane.task is not None]
    for lane in lanes:
        found.extend(lane.background)
    return found

"""Per-partition lanes and group membership: assignment, revocation and commits.

A *lane* is one assigned partition: the task handling its batch in offset order and the
batches fetched for it that wait their turn. Each lane's progress is a watermark in the
``OffsetTracker``; ``Partitions._committer`` commits watermarks, and a revoked partition's
progress is committed before it is given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from aiokafka import ConsumerRebalanceListener  # type: ignore[import-untyped]
from aiokafka.errors import CommitFailedError, KafkaError  # type: ignore[import-untyped]

from framework.transports.kafka.offsets import OffsetTracker

logger = logging.getLogger("framework.kafka")


class Lane:
    """One assigned partition: its running batch task and the batches waiting for it."""

    __slots__ = ("acks", "backlog", "closed", "fetched", "open", "task", "tp")

    def __init__(self, tp: Any) -> None:
        self.tp = tp
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


class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, transport: Partitions) -> None:
        self.transport = transport

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.transport._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.transport._on_assigned(set(assigned))


class Partitions:
    """``KafkaTransport``'s group membership, lane tasks and watermark commits."""

    start_timeout: float
    shutdown_timeout: float
    commit_interval: float
    commit_timeout: float
    _consumer: Any
    _lanes: dict[Any, Lane]
    _tracker: OffsetTracker[Any]
    _tasks: set[asyncio.Task[Any]]
    _serving: asyncio.Event
    _single: bool
    _full: set[Any]
    _room: asyncio.Event
    _commit_wanted: asyncio.Event
    _commit_lock: asyncio.Lock

    # -- group membership ------------------------------------------------------------

    def _on_assigned(self, assigned: set[Any]) -> None:
        self._single = len(assigned) == 1
        for tp in assigned:
            if tp not in self._lanes:
                self._lanes[tp] = Lane(tp)
        self._spawn(self._seed(assigned))

    async def _seed(self, assigned: set[Any]) -> None:
        """Pin each new partition's starting position (committed with the next commit),
        so a later owner never skips records this member was about to fetch (with
        ``auto_offset_reset="latest"``, a partition without a committed offset would
        otherwise start wherever its end is when the next owner looks)."""
        consumer = self._consumer
        try:
            async with asyncio.timeout(self.start_timeout):
                for tp in assigned:
                    with contextlib.suppress(KafkaError):
                        position = await consumer.position(tp)
                        lane = self._lanes.get(tp)
                        # Once records were fetched, the position is past unfinished
                        # ones: the first batch pinned the start instead.
                        if lane is not None and not lane.fetched:
                            self._tracker.seed(tp, position)
        except TimeoutError:
            logger.warning("Kafka positions of %s not known within the start timeout", assigned)
        self._serving.set()

    async def _on_revoked(self, revoked: set[Any]) -> None:
        self._single = False
        lanes = [self._lanes.pop(tp) for tp in revoked if tp in self._lanes]
        for lane in lanes:
            lane.close()
        self._full.difference_update(revoked)
        self._room.set()
        await self._finish([lane.task for lane in lanes if lane.task is not None])
        if revoked:
            await self._commit(revoked)
            self._tracker.forget(revoked)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, tasks: list[asyncio.Future[Any]], limit: float | None = None) -> None:
        """Wait for ``tasks`` up to ``limit`` (the shutdown timeout), then cancel the rest."""
        if not tasks:
            return
        limit = self.shutdown_timeout if limit is None else limit
        _, pending = await asyncio.wait(tasks, timeout=limit) if limit > 0 else ((), tasks)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("Cancelled %d Kafka handler task(s) still running", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    # -- commits ---------------------------------------------------------------------

    async def _committer(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.commit_interval):
                    await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit()

    async def _commit(self, partitions: set[Any] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        async with self._commit_lock:
            now = asyncio.get_running_loop().time()
            offsets = self._tracker.take(now, partitions)
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
                self._tracker.restore(offsets)
                logger.warning("Kafka commit failed (%r); will retry", exc)

"""The fetch loop and per-record handling: batches go to their partition's lane."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka.errors import ConsumerStoppedError, KafkaError  # type: ignore[import-untyped]

from framework.messaging.router import MessageHandler, Router
from framework.transports.kafka.context import KafkaContext
from framework.transports.kafka.lanes import Lane, Partitions
from framework.transports.kafka.recovery import Recovery
from framework.transports.kafka.replies import Replies
from framework.transports.kafka.wire import NO_HANDLER, payload, request_info

logger = logging.getLogger("framework.kafka")

NAME = "kafka"


# While some partitions are full, getmany waits at most this long for the others, so a
# full partition that made room is fetched again soon (a pending getmany cannot be told
# about it, and cancelling one upsets aiokafka's poll-interval bookkeeping).
_BUSY_POLL_MS = 5

_JSON_FIRST = frozenset(b"{[")


class Consuming(Partitions, Recovery, Replies):
    """``KafkaTransport``'s fetch loop and the handling of each partition's batches."""

    poll_timeout: float
    max_batch_size: int
    max_pending_batches: int
    _running: bool
    _router: Router | None
    _slots: asyncio.Semaphore

    # -- fetching --------------------------------------------------------------------

    async def _consume(self) -> None:
        consumer = self._consumer
        lanes = self._lanes
        full = self._full
        poll_ms = int(self.poll_timeout * 1000)
        busy_poll_ms = min(poll_ms, _BUSY_POLL_MS)
        failures = 0
        while True:
            try:
                if full:
                    # Fetch only for partitions with room; the others' records stay in
                    # aiokafka's buffer (one fetch response per partition at most).
                    ready = [tp for tp in consumer.assignment() if tp not in full]
                    if not ready:
                        self._room.clear()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self.poll_timeout):
                                await self._room.wait()
                        continue
                    batches = await consumer.getmany(
                        *ready, timeout_ms=busy_poll_ms, max_records=self.max_batch_size
                    )
                else:
                    batches = await consumer.getmany(
                        timeout_ms=poll_ms, max_records=self.max_batch_size
                    )
                failures = 0
            except ConsumerStoppedError:
                return
            except Exception as exc:
                # Never let the consume loop die: back off and fetch again.
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                logger.error("Kafka fetch failed (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            if not self._running:
                return
            for tp, records in batches.items():
                lane = lanes.get(tp)
                if lane is None:
                    lane = lanes[tp] = Lane(tp)
                if not lane.fetched:
                    # Pin where this member started, so that if it loses the partition
                    # before finishing anything, the next owner starts here too.
                    lane.fetched = True
                    self._tracker.seed(tp, records[0].offset)
                if lane.task is None and self._single:
                    # One partition assigned: nothing could run beside it, so handle the
                    # batch right here and save a task hop per batch.
                    await self._inline(lane, records)
                elif lane.task is None:
                    lane.task = asyncio.create_task(self._drain(lane, records))
                else:
                    lane.backlog.append(records)
                    if len(lane.backlog) >= self.max_pending_batches:
                        full.add(tp)

    async def _inline(self, lane: Lane, records: list[Any]) -> None:
        # A future stands for the batch, so revocation and stop can wait for it.
        lane.task = done = asyncio.get_running_loop().create_future()
        try:
            await self._handle_batch(lane, records)
        finally:
            lane.task = None
            if not done.done():
                done.set_result(None)

    async def _drain(self, lane: Lane, records: list[Any]) -> None:
        """Handle ``records`` and every batch queued behind them, in order."""
        try:
            while True:
                async with self._slots:
                    await self._handle_batch(lane, records)
                if not lane.open or not lane.backlog:
                    return
                records = lane.backlog.popleft()
                if lane.tp in self._full:
                    self._full.discard(lane.tp)
                    self._room.set()
        finally:
            lane.task = None

    # -- handling --------------------------------------------------------------------

    async def _handle_batch(self, lane: Lane, records: list[Any]) -> None:
        tp = lane.tp
        router = self._router
        assert router is not None
        events = router.find_events(tp.topic, NAME)
        finished = 0  # records[:finished] are done
        try:
            single = events[0] if len(events) == 1 else None
            if single is not None:
                # The hot path: one handler, records without headers. JSON values go to
                # the validator as they are; a context is built only for a handler that
                # asks for one.
                call = single.call
                decode = self._decoders.get(single, payload)
                wants_context = single.needs_context
                for record in records:
                    if record.headers or not lane.open:
                        break
                    value = record.value
                    ctx = KafkaContext(record) if wants_context else None
                    try:
                        await call(
                            value if value and value[0] in _JSON_FIRST else decode(value), ctx
                        )
                    except Exception as exc:
                        if not await self._recover(lane, record, single, exc, ctx):
                            return
                    finished += 1
            # Everything else (requests, headers, contexts, several handlers).
            for record in records[finished:]:
                if not lane.open or not await self._process(lane, record, events):
                    return
                finished += 1
        except Exception:
            # A bug of ours, not a handler failure: replay from the unfinished record
            # rather than let later commits skip it.
            logger.exception("Kafka lane %s failed; replaying its unfinished records", tp)
            lane.backlog.clear()
            if lane.open:
                with contextlib.suppress(KafkaError):
                    self._consumer.seek(tp, records[finished].offset)
        finally:
            if lane.acks:
                await self._settle(lane)
            if finished and self._tracker.done(tp, records[finished - 1].offset + 1, finished):
                self._commit_wanted.set()

    async def _process(self, lane: Lane, record: Any, events: tuple[MessageHandler, ...]) -> bool:
        """Any record: requests, several handlers, contexts. False if interrupted."""
        info = request_info(record.headers) if record.headers else None
        if info is not None:
            router = self._router
            assert router is not None
            handler = router.find_message(record.topic, NAME)
            if handler is not None:
                await self._serve_request(lane, record, handler, info)
                return True
            if not events:
                await self._reply(lane, info, None, error=NO_HANDLER)
                return True
        if not events:
            logger.warning("No Kafka handler for topic %r; record skipped", record.topic)
            return True
        ctx = KafkaContext(record) if any(h.needs_context for h in events) else None
        for handler in events:
            try:
                await handler.call(self._decoders.get(handler, payload)(record.value), ctx)
            except Exception as exc:
                if not await self._recover(lane, record, handler, exc, ctx):
                    return False
        return True

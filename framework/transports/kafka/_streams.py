"""Inbound streams on Kafka: one stream per (handler, partition), committed as it goes.

A topic whose one handler takes an ``AsyncIterator[T]`` (or ``Observable[T]``) feeds
each partition's records, in offset order, into that partition's ``InboundStream``; the
handler runs in a task of the lane (``Lane.background``) for as long as the partition is
assigned. A record's offset is committed once the stream says it is done (the handler
pulled past it, and no operator holds it: ``framework.inbound``), through ``Lane.done``.

- A record that does not decode or validate is dead-lettered at once and stays out of the
  stream; it counts as done with the record before it.
- Revocation and shutdown end the stream: the handler gets what was fetched, then the
  end of its iteration (operators hand out their open window), and what it finished by
  then is committed before the partition is given up.
- A handler that raises: nothing after the last done record is committed; the stream is
  dropped and the partition fetched again from its first unfinished record, into a new
  stream and a new call of the handler, after the handler's retry backoff. When the
  failures go on past ``max_retries`` without progress (or the error is a validation
  error), the oldest unfinished record is dead-lettered and skipped on replay: the
  culprit itself for a handler that buffers nothing; with a window, the window's earlier
  records go first, one per round, until the replay gets past the culprit (none is lost:
  each is in the dead-letter topic).
- Back-pressure: a stream buffers ``buffer`` records; the lane waits while it is full,
  its fetched batches pile up to ``max_pending_batches``, and the partition is no longer
  fetched from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from framework.inbound import DEFAULT_BUFFER, InboundStream
from framework.messaging._feeds import run
from framework.messaging.dispatch import Dispatcher, Inbound
from framework.messaging.router import MessageHandler
from framework.transports.kafka._lanes import DEFERRED, Lane
from framework.transports.kafka._recovery import Recovery
from framework.transports.kafka._retry import is_poison

logger = logging.getLogger("framework.kafka")

Decoder = Callable[[bytes | None], Any]


class _Feed:
    """One partition's stream for one handler, and where a replay must start."""

    __slots__ = ("next_offset", "stream")

    def __init__(self, stream: InboundStream[Any], next_offset: int) -> None:
        self.stream = stream
        self.next_offset = next_offset  # the first record not done yet


class _Replay:
    """After a failure: where the partition's records start again, from when, and the
    records dead-lettered meanwhile (skipped when they come again)."""

    __slots__ = ("attempts", "failed_at", "not_before", "offset", "skip")

    def __init__(self) -> None:
        self.offset = -1  # the first record of the replay
        self.failed_at = -1  # first unfinished record when the failures began
        self.attempts = 0  # failures in a row without progress
        self.not_before = 0.0  # monotonic time the new stream may start
        self.skip: set[int] = set()


class PartitionStreams:
    """The inbound streams of Kafka stream handlers.

    Args:
        dispatcher: builds the handler context of a stream's first record.
        recovery: dead-letters records, and gives each handler's retry policy.
        buffer: records each stream holds ahead of its handler.
    """

    def __init__(
        self, dispatcher: Dispatcher, recovery: Recovery, buffer: int = DEFAULT_BUFFER
    ) -> None:
        self._dispatcher = dispatcher
        self._recovery = recovery
        self.buffer = buffer
        self._feeds: dict[tuple[MessageHandler, Any], _Feed] = {}
        self._replays: dict[tuple[MessageHandler, Any], _Replay] = {}

    async def handle(
        self, lane: Lane, records: list[Any], handler: MessageHandler, decode: Decoder
    ) -> int:
        """Feed ``records`` into ``handler``'s stream of their partition; they finish
        later (``DEFERRED``)."""
        assert handler.validate_item is not None
        key = (handler, lane.tp)
        replay = self._replays.get(key)
        if replay is not None and replay.offset >= 0:
            # A batch fetched before the rewind is stale (and may have moved the fetch
            # position past it again): drop it and rewind once more.
            records = [r for r in records if r.offset >= replay.offset]
            if not records or records[0].offset != replay.offset:
                lane.rewind(replay.offset)
                return DEFERRED
            replay.offset = -1
            wait = replay.not_before - time.monotonic()
            if wait > 0 and not await lane.sleep(wait):
                return DEFERRED
        feed = self._feeds.get(key)
        if feed is None or feed.stream.ended:
            feed = self._start(lane, handler, records[0])
        stream = feed.stream
        validate = handler.validate_item
        skip = replay.skip if replay is not None else ()
        for record in records:
            if not lane.open or stream.ended:
                break
            if record.offset in skip:
                stream.skip(record)
                continue
            try:
                value = validate(decode(record.value))
            except Exception as exc:
                # Poison: recover dead-letters it without retrying.
                inbound = Inbound(record.topic, None, None, record, lane)
                if not await self._recovery.recover(lane, inbound, handler, exc):
                    break
                stream.skip(record)
                continue
            if not stream.offer(value, record) and not await stream.put(value, record):
                break
        return DEFERRED

    def _start(self, lane: Lane, handler: MessageHandler, first: Any) -> _Feed:
        feed: _Feed

        def done(record: Any, count: int) -> None:
            feed.next_offset = record.offset + 1
            lane.done(feed.next_offset)

        feed = _Feed(InboundStream(self.buffer, on_done=done), first.offset)
        self._feeds[(handler, lane.tp)] = feed
        ctx = None
        if handler.needs_context:
            ctx = self._dispatcher.context(Inbound(first.topic, None, None, first, lane))
        task = asyncio.get_running_loop().create_task(
            self._run(lane, handler, feed, ctx), name=f"kafka-stream {handler.name} {lane.tp}"
        )
        lane.background.add(task)
        task.add_done_callback(lane.background.discard)
        return feed

    async def _run(self, lane: Lane, handler: MessageHandler, feed: _Feed, ctx: Any) -> None:
        stream = feed.stream
        key = (handler, lane.tp)
        ender = asyncio.get_running_loop().create_task(_end_on_close(lane, stream))
        try:
            while True:
                before = stream.handed
                try:
                    await run(handler, stream, ctx)
                    if stream.handed == before and stream.waiting:
                        raise RuntimeError("the handler returned without reading its stream")
                except Exception as exc:
                    culprit = stream.oldest
                    stream.discard()  # before its operators' holds are released
                    await self._failed(lane, handler, feed, culprit, exc)
                    return
                if stream.ended and not stream.waiting:
                    return
                # It returned early: the next call gets the rest of the partition.
        finally:
            ender.cancel()
            if self._feeds.get(key) is feed:
                del self._feeds[key]
            if not lane.open:
                self._replays.pop(key, None)

    async def _failed(
        self, lane: Lane, handler: MessageHandler, feed: _Feed, culprit: Any, exc: Exception
    ) -> None:
        if not lane.open:
            logger.warning(
                "%s failed while %s was being given up (%r); its unfinished records "
                "stay uncommitted",
                handler.name,
                lane.tp,
                exc,
            )
            return
        key = (handler, lane.tp)
        replay = self._replays.get(key)
        if replay is None:
            replay = self._replays[key] = _Replay()
        if replay.failed_at != feed.next_offset:
            replay.failed_at, replay.attempts = feed.next_offset, 0
        replay.attempts += 1
        policy = self._recovery.policy_for(handler)
        if culprit is not None and (is_poison(exc) or replay.attempts > policy.max_retries):
            if not await self._recovery.dead_letter(
                lane, culprit, handler, exc, replay.attempts, policy
            ):
                return
            replay.skip.add(culprit.offset)
            replay.attempts = 0
            delay = 0.0
        else:
            delay = policy.delay(replay.attempts)
            logger.warning(
                "%s failed on its stream of %s (attempt %d of %d): %r; replaying from "
                "offset %d in %.2f s",
                handler.name,
                lane.tp,
                replay.attempts,
                policy.max_retries + 1,
                exc,
                feed.next_offset,
                delay,
            )
        replay.offset = feed.next_offset
        replay.not_before = time.monotonic() + delay
        lane.rewind(feed.next_offset)


async def _end_on_close(lane: Lane, stream: InboundStream[Any]) -> None:
    await lane.closed.wait()
    stream.end()

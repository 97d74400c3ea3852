"""Requests served from Kafka: reply records, error replies and streamed replies.

``Replier`` turns a request's outcome (``Dispatcher.request``) into reply records as
NestJS clients expect them (``wire.py`` has the rules): a value is one record marked
is-disposed; an error is one record with ``kafka_nest-err``; a stream is driven by
``streams.drive`` in a task of its own, one record per item, the last one marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from framework.messaging.codecs import encode
from framework.messaging.dispatch import Failure, Outcome, Reply, Stream
from framework.messaging.streams import drive
from framework.transports.kafka._admin import finish_tasks
from framework.transports.kafka._lanes import Lane
from framework.transports.kafka.wire import NO_HANDLER, RequestInfo, json_value, reply_headers

logger = logging.getLogger("framework.kafka")

SHUTTING_DOWN = {"status": "error", "message": "The service is shutting down"}
"""The error reply of a stream cut short by ``stop`` (or a revocation)."""

MAX_UNACKED = 64
"""Records of one stream sent but not yet acknowledged; the stream waits beyond it."""


class Replier:
    """Writes the replies of requests.

    Args:
        producer: an ``AIOKafkaProducer`` (``send`` is used).
        max_streams: streamed replies running at once; ``answer`` waits for a slot
            (and so holds its partition) when they all run.
        stream_end_wait: seconds a stream item is held back waiting for the next one,
            so the last item can carry the end mark.
    """

    def __init__(self, producer: Any, *, max_streams: int = 1000, stream_end_wait: float = 0.01):
        self._producer = producer
        self.stream_end_wait = stream_end_wait
        self._slots = asyncio.Semaphore(max_streams)
        self._streams: set[asyncio.Task[None]] = set()

    @property
    def streams(self) -> int:
        """Streamed replies running."""
        return len(self._streams)

    async def answer(self, lane: Lane, info: RequestInfo, outcome: Outcome) -> None:
        """Reply to a request with its outcome. A single reply's ack joins the lane's
        (``settle``); a stream keeps replying in the background."""
        cls = outcome.__class__
        if cls is Reply:
            assert isinstance(outcome, Reply)
            await self.send(lane, info, json_value(outcome.data))
        elif cls is Stream:
            assert isinstance(outcome, Stream)
            # Streams may run for long: keep replying in the background, so the
            # partition moves on (as NestJS does after the first item).
            await self._slots.acquire()
            task = asyncio.create_task(self._stream(outcome, info))
            self._streams.add(task)
            task.add_done_callback(self._streams.discard)
        elif cls is Failure:
            assert isinstance(outcome, Failure)
            await self.send(lane, info, None, error=outcome.payload)
        else:  # NOT_FOUND
            await self.send(lane, info, None, error=NO_HANDLER)

    async def send(
        self,
        lane: Lane | None,
        info: RequestInfo,
        value: bytes | None,
        *,
        disposed: bool = True,
        error: Any = None,
        no_value: bool = False,
    ) -> asyncio.Future[Any] | None:
        """Queue one reply record; returns its broker ack (``None`` if it could not be
        queued, logged). With a ``lane``, the ack is awaited with the lane's batch."""
        headers = reply_headers(
            info.correlation_id,
            disposed=disposed or error is not None,
            error=error,
            no_value=no_value,
        )
        try:
            # A null value needs a key for aiokafka: the correlation id (clients ignore it).
            key = None if value is not None else info.correlation_id.encode()
            ack: asyncio.Future[Any] = await self._producer.send(
                info.reply_topic, value, key=key, partition=info.reply_partition, headers=headers
            )
        except Exception as exc:
            logger.error("Reply to %s failed: %r", info.reply_topic, exc)
            return None
        if lane is not None:
            lane.acks.append(ack)
        return ack

    async def settle(self, lane: Lane) -> None:
        """Wait for the acks of the replies sent for ``lane``'s batch."""
        acks, lane.acks = lane.acks, []
        await _settle(acks)

    async def _stream(self, outcome: Stream, info: RequestInfo) -> None:
        respond = _StreamReply(self, info)
        try:
            await drive(
                outcome.source,
                respond,
                where=outcome.handler.name,
                encoder=encode,
                merge_last=self.stream_end_wait,
            )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await respond.error(SHUTTING_DOWN)
            raise
        finally:
            self._slots.release()
            await respond.flush()

    async def stop(self, timeout: float) -> None:
        """Let running streams end for up to ``timeout`` seconds, then cancel them
        (each gets a shutting-down error reply)."""
        await finish_tasks(list(self._streams), timeout)


class _StreamReply:
    """The ``Respond`` of one streamed reply: a record per item, the end mark on the
    last one (or on a record of its own), an error record."""

    __slots__ = ("_acks", "_info", "_replier")

    def __init__(self, replier: Replier, info: RequestInfo) -> None:
        self._replier = replier
        self._info = info
        self._acks: deque[asyncio.Future[Any]] = deque()

    async def _send(self, value: bytes | None, **flags: Any) -> bool:
        ack = await self._replier.send(None, self._info, value, **flags)
        if ack is None:
            return False  # the producer refused (logged): stop the stream
        self._acks.append(ack)
        if len(self._acks) > MAX_UNACKED:
            await _settle([self._acks.popleft()])
        return True

    async def item(self, data: bytes) -> bool:
        return await self._send(json_value(data), disposed=False)

    async def end(self, last: bytes | None) -> None:
        if last is None:
            await self._send(None, disposed=True, no_value=True)
        else:
            await self._send(json_value(last), disposed=True)

    async def error(self, payload: dict[str, Any]) -> None:
        await self._send(None, error=payload)

    async def flush(self) -> None:
        acks, self._acks = list(self._acks), deque()
        await _settle(acks, what="stream reply")


async def _settle(acks: list[asyncio.Future[Any]], what: str = "reply") -> None:
    if not acks:
        return
    for result in await asyncio.gather(*acks, return_exceptions=True):
        if isinstance(result, BaseException):
            logger.error("A Kafka %s was not delivered: %r", what, result)

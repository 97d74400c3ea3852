"""Running inbound-stream handlers, and the streams of transports that dispatch events.

A handler whose payload is an ``AsyncIterator[T]`` or ``Observable[T]`` runs once per
stream (``framework.inbound.InboundStream``), not once per message: ``run`` calls it and
runs what it returns to its end. ``Feeds`` keeps the streams of one ``Dispatcher`` (memory,
WebSocket, Socket.IO, SSE ``POST``): one per (handler, key), the key being the connection
on transports that say so, and feeds each event into its stream, validated on its own (a
bad one is refused as a single event is, and stays out). These transports do not
redeliver, so a handler that raises loses what it had pulled (logged, as a failed event
is) and is called again with a fresh iteration for what comes next. Kafka runs its
streams per partition (``transports/kafka/_streams.py``), with commits and replays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from framework.inbound import DEFAULT_BUFFER, InboundStream
from framework.messaging.errors import error_payload
from framework.messaging.streams import close, is_stream, iterate

if TYPE_CHECKING:
    from framework.messaging.context import MessageContext
    from framework.messaging.router import Invoke, MessageHandler

logger = logging.getLogger("framework.messaging")


async def run(handler: MessageHandler, stream: InboundStream[Any], ctx: Any) -> None:
    """Call ``handler`` with ``stream`` (as an Observable, if it takes one) and run its
    result to the end; what it pulled is then done. Raises what the handler raises."""
    call = handler.call_stream
    assert call is not None
    if handler.signature.stream_input == "observable":
        from framework.rx import run_observable_input  # only for handlers that take one

        await run_observable_input(call, stream, ctx)
    else:
        result = await call(stream, ctx)
        if result is not None and is_stream(result):
            iterator = iterate(result)
            try:
                async for _ in iterator:
                    pass
            finally:
                await close(iterator)
    stream.finish()


def stream_of_one(handler: MessageHandler) -> Invoke:
    """``handler.call`` of an inbound-stream handler: one message as a stream of one."""

    async def call(raw: Any, ctx: Any) -> None:
        assert handler.validate_item is not None
        stream: InboundStream[Any] = InboundStream(1)
        await stream.put(handler.validate_item(raw))
        stream.end()
        await run(handler, stream, ctx)

    return call


def log_refusal(handler: MessageHandler, pattern: str, exc: Exception) -> None:
    """Log an event handler's failure: unexpected errors with their traceback (that is
    ``error_payload``'s doing), refusals (validation, ``RpcException``) on one line."""
    payload = error_payload(exc, where=handler.name)
    if payload.get("message") != "Internal server error":
        logger.warning("Event handler %s refused %r: %s", handler.name, pattern, payload)


class _Feed:
    __slots__ = ("stream", "task")

    def __init__(self, stream: InboundStream[Any]) -> None:
        self.stream = stream
        self.task: asyncio.Task[None] | None = None


class Feeds:
    """The inbound streams of one dispatcher.

    Args:
        context: the handler context of a message (``Dispatcher.context``); a stream's
            handler gets its first message's.
        size: items each stream buffers ahead of its handler; ``add`` waits while
            they wait (the transport's back-pressure).

    Attributes:
        idle: told when no fed item is left undone (the memory transport's ``join``).
    """

    __slots__ = ("_context", "_feeds", "_undone", "idle", "size")

    def __init__(
        self, context: Callable[[Any], MessageContext], size: int = DEFAULT_BUFFER
    ) -> None:
        self._context = context
        self.size = size
        self._feeds: dict[tuple[MessageHandler, Hashable], _Feed] = {}
        self._undone = 0
        self.idle: Callable[[], None] | None = None

    def __len__(self) -> int:
        """Items fed and not yet done."""
        return self._undone

    async def add(self, handler: MessageHandler, message: Any, key: Hashable = None) -> None:
        """Validate ``message.payload`` into ``handler``'s stream for ``key`` (started on
        first use); waits while the stream is full."""
        assert handler.validate_item is not None
        try:
            value = handler.validate_item(message.payload)
        except Exception as exc:
            log_refusal(handler, message.pattern, exc)
            return
        while True:
            feed = self._feeds.get((handler, key))
            if feed is None:
                feed = self._start(handler, message, key)
            stream = feed.stream
            if stream.offer(value) or await stream.put(value):
                self._undone += 1
                return
            # It ended meanwhile (its key was ended, or it gave up): a new one takes it.
            if self._feeds.get((handler, key)) is feed:
                del self._feeds[(handler, key)]

    def _start(self, handler: MessageHandler, message: Any, key: Hashable) -> _Feed:
        feed = _Feed(InboundStream(self.size, on_done=self._done))
        ctx = self._context(message) if handler.needs_context else None
        feed.task = asyncio.get_running_loop().create_task(
            self._run(handler, feed, ctx, message.pattern), name=f"inbound-stream {handler.name}"
        )
        self._feeds[(handler, key)] = feed
        return feed

    async def _run(self, handler: MessageHandler, feed: _Feed, ctx: Any, pattern: str) -> None:
        stream = feed.stream
        try:
            while not (stream.ended and not stream.waiting):
                before = stream.handed
                try:
                    await run(handler, stream, ctx)
                except Exception as exc:
                    log_refusal(handler, pattern, exc)
                    stream.finish()  # what it pulled is lost; the next call gets the rest
                    if stream.handed == before:
                        break  # it fails before reading: do not spin on what waits
                    continue
                if stream.handed == before and stream.waiting:
                    logger.error(
                        "%s returned without reading its inbound stream; %d item(s) dropped",
                        handler.name,
                        stream.waiting,
                    )
                    break
        finally:
            for k, f in list(self._feeds.items()):
                if f is feed:
                    del self._feeds[k]
            stream.close()  # nothing comes back on these transports: count it done
            self._done(None, 0)

    def _done(self, token: Any, count: int) -> None:
        self._undone -= count
        if not self._undone and self.idle is not None:
            self.idle()

    def end(self, key: Hashable) -> None:
        """End the streams of ``key`` (a connection that closed): their handlers get what
        waits, then the end of their iteration."""
        for (_, k), feed in list(self._feeds.items()):
            if k == key:
                feed.stream.end()

    async def close(self, timeout: float | None = None) -> None:
        """End every stream and wait for their handlers to return (up to ``timeout``
        seconds, then they are cancelled)."""
        feeds = list(self._feeds.values())
        for feed in feeds:
            feed.stream.end()
        tasks = [f.task for f in feeds if f.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("Cancelled %d inbound-stream handler(s) still running", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

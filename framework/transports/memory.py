"""The in-process transport: the embedded default, an event emitter, and a test double.

It keeps the semantics of the real transports: payloads travel as JSON bytes and are
validated like Kafka records, replies come back decoded from JSON, errors come back as
error replies (``RemoteError``), events go to every matching handler, and events queue
in a bounded queue that applies back-pressure to emitters when full.

Events are handled in emit order by ``workers`` tasks (one by default, so order is kept
as on one Kafka partition); requests run inline in the caller's task under its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from framework.exceptions import (
    PatternNotFoundError,
    RemoteError,
    RequestTimeoutError,
    TransportError,
)
from framework.messaging.codecs import decode, encode
from framework.messaging.context import MessageContext
from framework.messaging.errors import error_payload
from framework.messaging.router import MessageHandler, run_event_handlers
from framework.transports.base import ClientProxy, HeaderHook, Transport
from framework.transports.channel import BoundedChannel

_Event = tuple[str, bytes, Mapping[str, str] | None]


class MemoryTransport(Transport):
    """In-process delivery.

    Args:
        max_queue: events waiting to be handled; ``emit`` waits when the queue is full.
        workers: tasks handling events; 1 keeps emit order.
        default_timeout: seconds a ``send``/``stream`` item may take when the caller
            gives no timeout.

    Attributes:
        client_header_hooks: the ``header_hooks`` of every client of this transport (made
            before or after they were set): the memory client is a handle on it.
    """

    name = "memory"
    client_header_hooks: tuple[HeaderHook, ...] = ()

    def __init__(
        self, *, max_queue: int = 10_000, workers: int = 1, default_timeout: float = 10.0
    ) -> None:
        if max_queue < 1 or workers < 1:
            raise ValueError("max_queue and workers must be at least 1")
        self.max_queue = max_queue
        self.workers = workers
        self.default_timeout = default_timeout
        self._queue: BoundedChannel[_Event | None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Events accepted but not yet handled, for join(); a counter costs nothing per event.
        self._unfinished = 0
        self._idle: asyncio.Event | None = None

    async def start(self) -> None:
        self._queue = BoundedChannel(self.max_queue)
        self._tasks = [
            # The worker gets the queue now: stop() clears self._queue, possibly before
            # a worker first runs, and the events queued by then must still be handled.
            asyncio.create_task(self._work(self._queue), name=f"memory-transport-{i}")
            for i in range(self.workers)
        ]

    async def stop(self) -> None:
        """Handle every queued event, then stop the workers."""
        queue, self._queue = self._queue, None
        if queue is None:
            return
        for _ in self._tasks:
            await queue.put(None)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def join(self) -> None:
        """Wait until every event emitted so far has been handled (for tests)."""
        while self._unfinished:
            self._idle = asyncio.Event()
            await self._idle.wait()

    @property
    def ready(self) -> bool:
        return self._queue is not None and all(not t.done() for t in self._tasks)

    @property
    def alive(self) -> bool:
        return self._queue is None or all(not t.done() for t in self._tasks)

    def create_client(self) -> MemoryClient:
        return MemoryClient(self)

    # -- events ---------------------------------------------------------------------

    async def enqueue(self, pattern: str, raw: bytes, headers: Mapping[str, str] | None) -> None:
        queue = self._queue
        if queue is None:
            raise TransportError("The memory transport is not running; start the app first")
        await queue.put((pattern, raw, headers))
        self._unfinished += 1

    async def _work(self, queue: BoundedChannel[_Event | None]) -> None:
        router, name, logger = self.host.router, self.name, self.host.logger
        last_pattern: str | None = None
        handlers: tuple[MessageHandler, ...] = ()
        while True:
            item = await queue.get()
            # Drain what is already queued without awaiting between items.
            while item is not None:
                pattern, raw, headers = item
                if pattern is not last_pattern:  # runs of one pattern skip the lookup
                    handlers = router.find_events(pattern, name)
                    last_pattern = pattern
                if len(handlers) == 1:
                    handler = handlers[0]
                    ctx = None
                    if handler.needs_context:
                        ctx = MessageContext(pattern, name, headers, raw)
                    try:
                        await handler.call(raw, ctx)
                    except Exception:
                        logger.exception("Event handler %s failed for %r", handler.name, pattern)
                elif handlers:
                    ctx = None
                    if any(h.needs_context for h in handlers):
                        ctx = MessageContext(pattern, name, headers, raw)
                    await run_event_handlers(handlers, raw, ctx)
                else:
                    logger.warning("No event handler for pattern %r; event dropped", pattern)
                self._unfinished -= 1
                if self._unfinished == 0 and self._idle is not None:
                    self._idle.set()
                ok, item = queue.try_get()
                if not ok:
                    break  # nothing buffered: wait for the next item
            else:
                return  # None: stop() asked this worker to end

    # -- requests -------------------------------------------------------------------

    def _handler(self, pattern: str) -> MessageHandler:
        if self._queue is None:
            raise TransportError("The memory transport is not running; start the app first")
        handler = self.host.router.find_message(pattern, self.name)
        if handler is None:
            raise RemoteError(error_payload(PatternNotFoundError(pattern)))
        return handler

    async def request(
        self, pattern: str, raw: bytes, headers: Mapping[str, str] | None, timeout: float | None
    ) -> Any:
        """The decoded reply; a stream's last item. Raises ``RemoteError`` on errors."""
        handler = self._handler(pattern)
        limit = self.default_timeout if timeout is None else timeout
        ctx = MessageContext(pattern, self.name, headers, raw) if handler.needs_context else None
        try:
            async with asyncio.timeout(limit):
                result = await handler.call(raw, ctx)
                if hasattr(result, "__aiter__"):
                    last = None
                    async for item in result:
                        last = item
                    result = last
                return decode(encode(result))
        except TimeoutError:
            raise RequestTimeoutError(pattern, limit) from None
        except Exception as exc:
            raise RemoteError(error_payload(exc, where=handler.name)) from exc

    async def request_stream(
        self, pattern: str, raw: bytes, headers: Mapping[str, str] | None, timeout: float | None
    ) -> AsyncIterator[Any]:
        handler = self._handler(pattern)
        limit = self.default_timeout if timeout is None else timeout
        ctx = MessageContext(pattern, self.name, headers, raw) if handler.needs_context else None
        try:
            async with asyncio.timeout(limit):
                result = await handler.call(raw, ctx)
            if not hasattr(result, "__aiter__"):
                yield decode(encode(result))
                return
            iterator = aiter(result)
            try:
                while True:
                    async with asyncio.timeout(limit):
                        try:
                            item = await anext(iterator)
                        except StopAsyncIteration:
                            return
                    yield decode(encode(item))
            finally:
                close = getattr(iterator, "aclose", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        await close()
        except TimeoutError:
            raise RequestTimeoutError(pattern, limit) from None
        except (RemoteError, GeneratorExit):
            raise
        except Exception as exc:
            raise RemoteError(error_payload(exc, where=handler.name)) from exc


class MemoryClient(ClientProxy):
    """The in-memory ``ClientProxy``: what ``ClientProxy`` injects by default.

    Its ``header_hooks`` are its transport's ``client_header_hooks``, shared by every
    client of the transport; with none, sending costs nothing more.
    """

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport

    @property
    def header_hooks(self) -> tuple[HeaderHook, ...]:
        return self.transport.client_header_hooks

    @header_hooks.setter
    def header_hooks(self, hooks: tuple[HeaderHook, ...]) -> None:
        self.transport.client_header_hooks = hooks

    async def send(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        transport = self.transport
        if transport.client_header_hooks:
            headers = self.outgoing_headers(headers)
        return await transport.request(pattern, encode(data), headers, timeout)

    def stream(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Any]:
        transport = self.transport
        if transport.client_header_hooks:
            headers = self.outgoing_headers(headers)
        return transport.request_stream(pattern, encode(data), headers, timeout)

    async def emit(
        self,
        pattern: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        transport = self.transport
        if transport.client_header_hooks:
            headers = self.outgoing_headers(headers)
        queue = transport._queue
        item = (pattern, encode(data), headers)
        if queue is not None and queue.try_put(item):
            transport._unfinished += 1
        else:
            await transport.enqueue(*item)  # waits for room, or says it is not running

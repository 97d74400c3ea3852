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
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import Any

from framework.exceptions import (
    ConfigurationError,
    RemoteError,
    RequestTimeoutError,
    TransportError,
)
from framework.messaging._batches import Batcher
from framework.messaging.codecs import decode, encode
from framework.messaging.dispatch import (
    NOT_FOUND,
    Dispatcher,
    Failure,
    Inbound,
    Outcome,
    Reply,
    Stream,
    last_reply,
)
from framework.messaging.streams import Buffered, drive
from framework.transports.base import ClientProxy, HeaderHook, Transport
from framework.transports.channel import BoundedChannel


class MemoryTransport(Transport):
    """In-process delivery.

    Args:
        max_queue: events waiting to be handled; ``emit`` waits when the queue is full.
        workers: tasks handling events; 1 keeps emit order.
        default_timeout: seconds a ``send``/``stream`` item may take when the caller
            gives no timeout.
        stream_buffer: items of a streamed reply produced ahead of the reader (default
            1, so the handler runs about in step with the reader); the handler's
            generator waits while they are unread.

    Attributes:
        client_header_hooks: the ``header_hooks`` of every client of this transport (made
            before or after they were set): the memory client is a handle on it.
    """

    name = "memory"
    client_header_hooks: tuple[HeaderHook, ...] = ()

    def __init__(
        self,
        *,
        max_queue: int = 10_000,
        workers: int = 1,
        default_timeout: float = 10.0,
        stream_buffer: int = 1,
    ) -> None:
        if max_queue < 1 or workers < 1 or stream_buffer < 1:
            raise ConfigurationError(
                "MemoryTransport max_queue, workers and stream_buffer must be at least 1"
            )
        self.stream_buffer = stream_buffer
        self.max_queue = max_queue
        self.workers = workers
        self.default_timeout = default_timeout
        self._queue: BoundedChannel[Inbound | None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Events accepted but not yet handled, for join(); a counter costs nothing per event.
        self._unfinished = 0
        self._idle: asyncio.Event | None = None
        self._batchers: list[Batcher] = []

    async def start(self) -> None:
        self._dispatcher = Dispatcher(self.host.router, self.name)
        self._dispatcher.feeds.idle = self._maybe_idle
        self._accepted = asyncio.get_running_loop().create_future()
        self._accepted.set_result(None)
        self._queue = BoundedChannel(self.max_queue)
        self._batchers = []
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
        await self._dispatcher.feeds.close()  # inbound streams end: their handlers return

    async def join(self) -> None:
        """Wait until every event emitted so far has been handled (for tests); events
        waiting in a batch count as unhandled until their batch is, and events in an
        inbound stream until they are done (``framework.inbound``)."""
        while self._busy():
            self._idle = asyncio.Event()
            await self._idle.wait()

    def _busy(self) -> bool:
        if self._unfinished or any(self._batchers):
            return True
        dispatcher: Dispatcher | None = getattr(self, "_dispatcher", None)  # (not started)
        return dispatcher is not None and bool(dispatcher.feeds)

    def _maybe_idle(self) -> None:
        if self._idle is not None and not self._busy():
            self._idle.set()

    @property
    def ready(self) -> bool:
        return self._queue is not None and all(not t.done() for t in self._tasks)

    @property
    def alive(self) -> bool:
        return self._queue is None or all(not t.done() for t in self._tasks)

    def create_client(self) -> MemoryClient:
        return MemoryClient(self)

    # -- events ---------------------------------------------------------------------

    async def enqueue(self, inbound: Inbound) -> None:
        queue = self._queue
        if queue is None:
            raise TransportError("The memory transport is not running; start the app first")
        await queue.put(inbound)
        self._unfinished += 1

    async def _work(self, queue: BoundedChannel[Inbound | None]) -> None:
        events = self._dispatcher.events
        # Events for batch handlers wait here, up to their max_wait, for more to come.
        batcher = self._dispatcher.batcher()
        self._batchers.append(batcher)
        stopping = False

        def drained(first: Inbound) -> Iterator[Inbound]:
            # What is queued, without awaiting between items; each resume means the
            # item before finished.
            nonlocal stopping
            item: Inbound | None = first
            while item is not None:
                yield item
                self._unfinished -= 1
                if self._unfinished == 0 and self._idle is not None:
                    self._idle.set()
                ok, item = queue.try_get()
                if not ok:
                    return  # nothing buffered: wait for the next item
            stopping = True  # None: stop() asked this worker to end

        while not stopping:
            due = batcher.due()
            if due is None:
                first = await queue.get()
            else:
                try:
                    async with asyncio.timeout(due):
                        first = await queue.get()
                except TimeoutError:
                    await batcher.flush_due()
                    self._maybe_idle()
                    continue
            if first is None:
                break
            await events(drained(first), batcher)
        await batcher.flush_all()  # stopping: what waits is handled now
        self._maybe_idle()

    # -- requests -------------------------------------------------------------------

    def _inbound(self, pattern: str, raw: bytes, headers: Mapping[str, str] | None) -> Inbound:
        if self._queue is None:
            raise TransportError("The memory transport is not running; start the app first")
        return Inbound(pattern, raw, headers, raw)

    async def request(
        self, pattern: str, raw: bytes, headers: Mapping[str, str] | None, timeout: float | None
    ) -> Any:
        """The decoded reply; a stream's last item. Raises ``RemoteError`` on errors."""
        inbound = self._inbound(pattern, raw, headers)
        limit = self.default_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                outcome = await self._dispatcher.request(inbound)
                if isinstance(outcome, Stream):  # send() of a stream: its last item
                    outcome = await last_reply(outcome)
        except TimeoutError:
            raise RequestTimeoutError(pattern, limit) from None
        return _reply(outcome)

    async def request_stream(
        self, pattern: str, raw: bytes, headers: Mapping[str, str] | None, timeout: float | None
    ) -> AsyncIterator[Any]:
        inbound = self._inbound(pattern, raw, headers)
        limit = self.default_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                outcome = await self._dispatcher.request(inbound)
        except TimeoutError:
            raise RequestTimeoutError(pattern, limit) from None
        if not isinstance(outcome, Stream):
            yield _reply(outcome)
            return
        # The handler's stream runs in its own task into a bounded buffer; leaving this
        # iterator early cancels it, which closes the handler's generator.
        buffer = Buffered(self.stream_buffer)
        task = asyncio.create_task(drive(outcome.source, buffer, where=outcome.handler.name))
        try:
            while True:
                try:
                    async with asyncio.timeout(limit):
                        data = await buffer.next()
                except TimeoutError:
                    raise RequestTimeoutError(pattern, limit) from None
                if data is None:
                    return
                yield decode(data)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _reply(outcome: Outcome) -> Any:
    """A single reply decoded, or the error it stands for raised as ``RemoteError``."""
    if isinstance(outcome, Reply):
        return decode(outcome.data)
    if isinstance(outcome, Failure):
        raise RemoteError(outcome.payload)
    raise RemoteError(dict(NOT_FOUND.payload))


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

    def emit(
        self,
        pattern: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Awaitable[None]:
        transport = self.transport
        if transport.client_header_hooks:
            headers = self.outgoing_headers(headers)
        queue = transport._queue
        raw = encode(data)
        item = Inbound(pattern, raw, headers, raw)
        if queue is not None and queue.try_put(item):
            transport._unfinished += 1
            # Accepted without waiting: a finished awaitable, not a coroutine per event
            # (a third of what the cheapest event costs).
            return transport._accepted
        return transport.enqueue(item)  # waits for room, or says it is not running

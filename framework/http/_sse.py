"""The WHATWG event-stream format, one client's stream, and the response for ``@sse`` routes.

Wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html): UTF-8
text; each event is a block of ``field: value`` lines ending with a blank line; data
with line breaks becomes several ``data:`` lines; a line starting with ``:`` is a
comment (the heartbeat). Responses carry ``Content-Type: text/event-stream``,
``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` (so nginx does not buffer).

``EventStream`` is one client's connection: a bounded buffer of encoded blocks and the
loop that writes them. Producers ``push`` encoded bytes and never wait; a client whose
buffer is full is dropped, so one slow reader never holds up the others.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from framework.exceptions import ConfigurationError
from framework.http._abort import abort_connection
from framework.messaging.codecs import encode
from framework.messaging.streams import close, drive

logger = logging.getLogger("framework.sse")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

PING = b": ping\n\n"
"""The heartbeat: a comment block, ignored by clients, that keeps proxies and the TCP
connection busy and lets a write reveal a dead peer."""


@dataclass(slots=True)
class ServerSentEvent:
    """One event with explicit fields; any may be left out.

    Attributes:
        data: a string as is; bytes as UTF-8 text; anything else JSON-encoded. ``None``
            sends no ``data:`` line, so clients dispatch no event (fields still apply).
        event: the event type (``addEventListener(type, ...)`` in browsers).
        id: the id browsers send back as ``Last-Event-ID`` on reconnect.
        retry: the reconnection delay in milliseconds.
        comment: a comment line (ignored by clients; keeps proxies from timing out).
    """

    data: Any = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None


def _field(name: str, value: str) -> bytes:
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE field {name!r} cannot contain a line break: {value!r}")
    if name == "id" and "\0" in value:
        raise ValueError("An SSE id cannot contain NUL (clients would ignore it)")
    return f"{name}: {value}\n".encode()


def data_lines(data: bytes) -> bytes:
    """``data:`` lines for UTF-8 ``data``: one per line of text."""
    if b"\n" not in data and b"\r" not in data:
        return b"data: " + data + b"\n"
    return b"".join(b"data: " + line + b"\n" for line in _LINE_BREAK_BYTES.split(data))


def encode_event(data: bytes, *, event: str | None = None, id: str | None = None) -> bytes:
    """The block for already-encoded ``data`` (JSON bytes): the fan-out fast path."""
    head = b""
    if event is not None:
        head += _field("event", event)
    if id is not None:
        head += _field("id", id)
    return head + data_lines(data) + b"\n"


def _data_bytes(data: Any) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes):
        return data
    return encode(data)


def format_event(item: Any) -> bytes:
    """Encode one item as an event-stream block, ending with the blank line.

    A ``ServerSentEvent`` sets the fields; anything else is the ``data`` of a plain event.
    """
    if not isinstance(item, ServerSentEvent):
        return data_lines(_data_bytes(item)) + b"\n"
    out: list[bytes] = []
    if item.comment is not None:
        out.extend(f": {line}\n".encode() for line in _LINE_BREAK.split(item.comment))
    if item.event is not None:
        out.append(_field("event", item.event))
    if item.id is not None:
        out.append(_field("id", item.id))
    if item.retry is not None:
        out.append(b"retry: %d\n" % int(item.retry))
    if item.data is not None:
        out.append(data_lines(_data_bytes(item.data)))
    out.append(b"\n")
    return b"".join(out)


class StreamState(enum.Enum):
    """Where one client's stream is.

    OPEN -> CLOSING (``close``: write what is buffered, then end the response)
    OPEN/CLOSING -> DROPPED (``drop``: discard the buffer, end now)
    any -> DISCONNECTED (the client went away)
    """

    OPEN = "open"
    CLOSING = "closing"
    DROPPED = "dropped"
    DISCONNECTED = "disconnected"


class EventStream:
    """One client's event stream: a bounded buffer and the loop that writes it.

    ``push`` never waits. The writer sends everything buffered in one body chunk, so a
    burst costs one write per client, not one per event.

    Args:
        max_buffer: encoded events that may wait for this client; ``push`` refuses more
            (the owner then drops the client).
        headers: response headers (the SSE headers by default).
        status_code: the response status.
        name: how logs name this client.
    """

    __slots__ = (
        "__weakref__",
        "_abort",
        "_buffer",
        "_send",
        "_sending",
        "_task",
        "_waiter",
        "headers",
        "idle",
        "max_buffer",
        "name",
        "state",
        "status_code",
    )

    def __init__(
        self,
        *,
        max_buffer: int = 100,
        headers: list[tuple[bytes, bytes]] | None = None,
        status_code: int = 200,
        name: str = "client",
    ) -> None:
        if max_buffer < 1:
            raise ConfigurationError("EventStream max_buffer must be at least 1")
        self.max_buffer = max_buffer
        self.headers = SSE_HEADERS if headers is None else headers
        self.status_code = status_code
        self.name = name
        self.state = StreamState.OPEN
        self.idle = True
        self._buffer: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._sending = False
        self._send: Send | None = None
        self._abort = False

    def __repr__(self) -> str:
        return f"EventStream({self.name}, {self.state.value}, buffered={len(self._buffer)})"

    @property
    def buffered(self) -> int:
        """Events waiting to be written."""
        return len(self._buffer)

    def push(self, block: bytes) -> int:
        """Queue an encoded block; returns how many are buffered, or -1 if refused
        (the buffer is full, or the stream is no longer open)."""
        if self.state is not StreamState.OPEN:
            return -1
        buffer = self._buffer
        if len(buffer) >= self.max_buffer:
            return -1
        buffer.append(block)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return len(buffer)

    def prime(self, block: bytes) -> None:
        """Queue a block outside the limit (the opening ``retry:``, a replay, a last
        error event): bounded by its caller, never refused while the stream is open."""
        if self.state in (StreamState.OPEN, StreamState.CLOSING):
            self._buffer.append(block)
            self._wake()

    def tick(self) -> bool:
        """Heartbeat check: queue a ping if nothing was written since the last tick.

        Returns False when the ping did not fit (the client is not reading).
        """
        ok = True
        if self.idle and self.state is StreamState.OPEN:
            ok = self.push(PING) >= 0
        self.idle = True
        return ok

    def close(self) -> None:
        """Finish: write what is buffered, then end the response."""
        if self.state is StreamState.OPEN:
            self.state = StreamState.CLOSING
            self._wake()

    def drop(self) -> None:
        """Discard what is buffered and end the response now.

        A writer blocked on a client that stopped reading is cancelled, and the TCP
        connection is aborted where the server lets us reach it (``abort_connection``):
        closing it nicely would wait forever to flush what the client never reads.
        """
        if self.state not in (StreamState.OPEN, StreamState.CLOSING):
            return
        self.state = StreamState.DROPPED
        self._buffer.clear()
        if self._send is not None:
            abort_connection(self._send)
        if self._sending and self._task is not None:
            self._abort = True
            self._task.cancel()
        else:
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def serve(self, receive: Receive, send: Send) -> None:
        """Run the response: headers, then buffered blocks until closed or dropped, or
        until the client disconnects."""
        self._task = asyncio.current_task()
        self._send = send
        watcher = asyncio.create_task(self._watch(receive), name=f"sse-watch-{self.name}")
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.headers}
            )
            await self._write(send)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            self._task = None

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if self.state is not StreamState.DROPPED:
            self.state = StreamState.DISCONNECTED
        self._buffer.clear()
        self._wake()

    async def _write(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        buffer = self._buffer
        while True:
            state = self.state
            if state is StreamState.DISCONNECTED:
                return
            if buffer and state is not StreamState.DROPPED:
                if len(buffer) == 1:
                    body = buffer.popleft()
                else:
                    body = b"".join(buffer)
                    buffer.clear()
                self._sending = True
                try:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                except asyncio.CancelledError:
                    if not self._abort:
                        raise
                    # Our own drop() cancelled a write the client never drained: leave
                    # the response unfinished so the server closes the connection.
                    task = asyncio.current_task()
                    if task is not None and task.uncancel() > 0:
                        raise
                    return
                finally:
                    self._sending = False
                if body is not PING:  # a lone ping is not activity: keep pinging
                    self.idle = False
                continue
            if state is StreamState.OPEN:
                self._waiter = loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            # CLOSING with everything written, or DROPPED while not blocked: end cleanly.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return


ROUTE_STREAMS_STATE = "framework_route_streams"
"""The attribute of a Starlette app's ``state`` holding its ``RouteStreams``."""


class RouteStreams:
    """The open ``EventStreamResponse`` streams of one app, to end them at shutdown.

    An ``Application`` keeps one in its Starlette app's ``state``; every event stream
    that app serves (``@sse`` routes, SSE transport replies) joins it.
    """

    def __init__(self) -> None:
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()

    def add(self, stream: EventStream) -> None:
        self._streams.add(stream)

    def close(self) -> int:
        """End every open stream after it wrote what it holds (their iterators are
        closed); returns how many.

        Call it when the server begins shutting down: uvicorn waits for open responses
        before it runs the app's shutdown, and an event stream never ends by itself.
        """
        streams = [s for s in self._streams if s.state is StreamState.OPEN]
        for stream in streams:
            stream.close()
        return len(streams)


def route_streams_of(scope: Scope) -> RouteStreams | None:
    """The ``RouteStreams`` of the app serving ``scope``, if it keeps one."""
    found = getattr(getattr(scope.get("app"), "state", None), ROUTE_STREAMS_STATE, None)
    return found if isinstance(found, RouteStreams) else None


async def run_heartbeat(stream: EventStream, interval: float) -> None:
    """Tick one stream every ``interval`` seconds; drop it when a ping does not fit."""
    while stream.state is StreamState.OPEN:
        await asyncio.sleep(interval)
        if not stream.tick():
            logger.warning("SSE %s dropped: not reading (heartbeat did not fit)", stream.name)
            stream.drop()


class EventStreamResponse(Response):
    """Streams a handler's stream as ``text/event-stream`` (what ``@sse`` routes return,
    and ``SseTransport`` for a ``POST`` whose handler streams).

    The stream is run by ``streams.drive`` into the client's ``EventStream``: each item
    becomes one event (see ``format_event``). A ``: ping`` comment goes out when nothing
    was written for ``heartbeat`` seconds. A client that disconnects is noticed at once
    (at the latest by the next heartbeat): the drive is cancelled and the source closed,
    so its ``finally`` blocks run. An exception inside the stream ends it with an
    ``event: error`` whose data is the safe error body (unexpected errors are logged with
    their traceback; the client sees "Internal server error").

    Args:
        source: the stream to send (any result ``streams.is_stream`` accepts).
        heartbeat: seconds of silence before a ping; ``None`` sends none.
        max_buffer: events waiting for a slow client; when the source produces faster
            than the client reads and the buffer is full, the client is dropped.
        retry_ms: sent first as ``retry:`` (the client's reconnection delay, ms);
            ``None`` leaves the client's default.
        status_code: the response status.
        headers: extra response headers.
        where: the handler name used in logs.
    """

    def __init__(
        self,
        source: Any,
        *,
        heartbeat: float | None = 15.0,
        max_buffer: int = 100,
        retry_ms: int | None = None,
        status_code: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
        where: str = "",
    ) -> None:
        if heartbeat is not None and heartbeat <= 0:
            raise ConfigurationError("heartbeat must be positive seconds, or None")
        self.source = source
        self.heartbeat = heartbeat
        self.max_buffer = max_buffer
        self.retry_ms = retry_ms
        self.status_code = status_code
        self.background = None
        self.body = b""
        self.raw_headers = [*SSE_HEADERS, *(headers or [])]
        self.where = where

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        name = f"{self.where or 'stream'}@{client[0]}:{client[1]}" if client else self.where
        stream = EventStream(max_buffer=self.max_buffer, headers=self.raw_headers, name=name)
        if self.retry_ms is not None:
            stream.prime(b"retry: %d\n\n" % self.retry_ms)
        streams = route_streams_of(scope)
        if streams is not None:
            streams.add(stream)
        respond = _EventWriter(stream)
        producer = drive(self.source, respond, where=self.where, encoder=format_event)
        tasks = [asyncio.create_task(producer, name=f"sse-produce-{name}")]
        if self.heartbeat is not None:
            tasks.append(asyncio.create_task(run_heartbeat(stream, self.heartbeat)))
        try:
            await stream.serve(receive, send)
        finally:
            # Cancelling the drive throws into the source where it waits, so its
            # ``finally`` runs now rather than at garbage collection.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await close(self.source)  # a drive cancelled before it began closed nothing


class _EventWriter:
    """The ``Respond`` of an event stream: items are pushed to the client's bounded
    buffer (never waiting on the socket); the end closes the stream after what it holds;
    an error goes out as ``event: error``, then the end."""

    __slots__ = ("stream",)

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream

    async def item(self, data: bytes) -> bool:
        stream = self.stream
        if stream.push(data) >= 0:
            return True
        if stream.state is not StreamState.OPEN:
            return False
        # Full: let the writer take the buffer; still full means the client is not
        # reading (its writer is blocked on the socket).
        await asyncio.sleep(0)
        if stream.push(data) >= 0:
            return True
        if stream.state is StreamState.OPEN:
            logger.warning(
                "SSE %s dropped: %d events buffered and the client is not reading",
                stream.name,
                stream.buffered,
            )
            stream.drop()
        return False

    async def end(self, last: bytes | None) -> None:
        if last is not None:
            self.stream.prime(last)
        self.stream.close()

    async def error(self, payload: dict[str, Any]) -> None:
        # Unexpected errors were logged with their traceback by error_payload;
        # deliberate ones (RpcException, HttpException) are part of the protocol.
        stream = self.stream
        logger.info("SSE %s ended with an error event: %s", stream.name, payload.get("message"))
        stream.prime(format_event(ServerSentEvent(data=payload, event="error")))
        stream.close()

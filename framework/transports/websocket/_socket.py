"""One connected client (``WsSocket``) and the registry of sockets, rooms and
subscriptions (``Hub``).

Every frame a socket sends goes through one ordered path: ``write`` (replies, stream
items, errors) and ``push`` (``emit``, rooms, broadcasts, ``publish``). A frame is
written at once when nothing is queued and the connection takes it; otherwise it waits
in the socket's bounded queue, drained in order by one writer task, so the client sees
frames in the order the server produced them. A reply written at once is awaited by the
task that handled the frame (the connection's reader: a client that stops reading its
replies stops being read, which is back-pressure); a push never waits: when a socket's
queue is full the socket is closed with 1008 and the publisher moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from framework.messaging.codecs import encode
from framework.transports._members import Members
from framework.transports._running import RunningStreams
from framework.transports.websocket._frames import FrameEncoder

logger = logging.getLogger("framework.websocket")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013

_ids = itertools.count(1)


class Link(Protocol):
    """How a socket writes to its connection (ASGI or a ``websockets`` server).

    A wire frame is what ``send_wire`` takes: ``str`` over ASGI, ``bytes`` otherwise;
    ``wire`` converts encoded JSON once, so a broadcast converts once for every socket.
    """

    def wire(self, frame: bytes) -> Any: ...

    def try_write(self, frame: Any) -> bool: ...

    async def send_wire(self, frame: Any) -> bool: ...

    async def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None: ...


class SocketState(enum.Enum):
    """A socket's lifecycle: OPEN -> CLOSING -> CLOSED, never backwards."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class WsSocket:
    """One connected WebSocket client, as gateways and handlers see it.

    Attributes:
        id: unique in this process.
        path: the URL path the client connected to.
        headers: the handshake's HTTP headers (case-insensitive).
        query: the handshake's query parameters (last value wins).
        client: ``(host, port)`` of the peer, when known.
        data: your own per-connection values (a guard may store the user here).
        state: ``SocketState``; pushes to a socket that is not OPEN are dropped.
        close_code: the close code once closing (ours or the client's), else ``None``.
    """

    __slots__ = (
        "_close_task",
        "_hub",
        "_link",
        "_queue",
        "_wake",
        "_writer",
        "client",
        "close_code",
        "data",
        "headers",
        "id",
        "path",
        "query",
        "reader",
        "rooms_",
        "state",
        "streams",
        "subscriptions_",
    )

    def __init__(
        self,
        hub: Hub,
        link: Link,
        *,
        path: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        client: tuple[str, int] | None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.id = f"ws-{next(_ids)}"
        self.path = path
        self.headers = headers
        self.query = query
        self.client = client
        self.data: dict[str, Any] = data if data is not None else {}
        self.state = SocketState.OPEN
        self.close_code: int | None = None
        self.rooms_: set[str] = set()
        self.subscriptions_: set[str] = set()
        self.reader: asyncio.Task[Any] | None = None
        self._hub = hub
        self._link = link
        self._queue: deque[Any] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.streams = RunningStreams()
        self._close_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"WsSocket(id={self.id!r}, path={self.path!r}, state={self.state.value})"

    # -- what users call -------------------------------------------------------------

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this socket is in."""
        return frozenset(self.rooms_)

    @property
    def subscriptions(self) -> frozenset[str]:
        """The patterns this socket subscribed to (``{"event": "subscribe"}``)."""
        return frozenset(self.subscriptions_)

    def emit(self, event: str, data: Any) -> bool:
        """Push ``{"event": event, "data": data}`` to this client without waiting.

        Returns ``False`` if the socket is not open or its send queue was full (the
        socket is then closed with 1008).
        """
        frame = self._hub.encoder.message(event, encode(data))
        return self.push(self._link.wire(frame))

    def join(self, room: str) -> None:
        """Add this socket to ``room`` (``transport.broadcast(..., room=room)``)."""
        if self.state is SocketState.OPEN:
            self._hub.join(self, room)

    def leave(self, room: str) -> None:
        self._hub.leave(self, room)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send what is queued, then close with ``code``; returns once closed."""
        self.begin_close(code, reason, flush=True)
        task = self._close_task
        if task is not None:
            await asyncio.shield(task)

    # -- transport internals ---------------------------------------------------------

    def push(self, frame: Any) -> bool:
        """Queue a wire frame for the writer task; closes the socket when full."""
        if self.state is not SocketState.OPEN:
            return False
        queue = self._queue
        if len(queue) >= self._hub.send_queue:
            logger.warning(
                "Closing %s: its send queue is full (%d frames); the client reads too slowly",
                self.id,
                len(queue),
            )
            self.begin_close(CLOSE_POLICY, "send queue full", flush=False)
            if self._hub.on_drop is not None:
                self._hub.on_drop(self, "send queue full")
            return False
        if not queue and self._link.try_write(frame):
            return True
        queue.append(frame)
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set_result(None)
        elif self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return True

    def write(self, frame: bytes) -> bool | Awaitable[bool]:
        """Write an encoded frame (a reply, a stream item, an error) in order: at once
        when nothing is queued and the connection takes it, else behind the queued
        frames. Returns whether it was written or queued, or, when the connection's
        buffer is full, an awaitable of that answer for the caller to wait on."""
        if self.state is not SocketState.OPEN:
            return False
        link = self._link
        wire = link.wire(frame)
        if self._queue:
            return self.push(wire)
        return link.try_write(wire) or link.send_wire(wire)

    async def send_now(self, frame: bytes) -> bool:
        """``write``, waiting while the client's TCP buffer is full."""
        written = self.write(frame)
        if isinstance(written, bool):
            return written
        return await written

    async def _write(self) -> None:
        queue = self._queue
        send = self._link.send_wire
        loop = asyncio.get_running_loop()
        while True:
            while queue:
                if not await send(queue.popleft()):
                    queue.clear()
                    return
            if self.state is not SocketState.OPEN:
                return
            wake = self._wake = loop.create_future()
            await wake

    @property
    def pending(self) -> int:
        """Frames waiting in the send queue."""
        return len(self._queue)

    @property
    def stream_count(self) -> int:
        """Streamed replies running on this connection."""
        return len(self.streams)

    def begin_close(self, code: int, reason: str, *, flush: bool) -> None:
        """Start closing (once): leave every room and subscription at once, optionally
        let the writer send what is queued, then close the connection."""
        if self.state is not SocketState.OPEN:
            return
        self.state = SocketState.CLOSING
        self.close_code = code
        self._hub.remove(self)
        if not flush:
            self._queue.clear()
        self._close_task = asyncio.get_running_loop().create_task(self._close(code, reason, flush))

    async def _close(self, code: int, reason: str, flush: bool) -> None:
        timeout = self._hub.close_timeout
        writer = self._writer
        try:
            async with asyncio.timeout(timeout):
                if flush and writer is not None and not writer.done():
                    # CLOSING refuses new pushes: the writer empties the queue and exits.
                    wake, self._wake = self._wake, None
                    if wake is not None:
                        wake.set_result(None)
                    await asyncio.shield(writer)
                self._stop_writer()
                await self._link.close(code, reason)
        except TimeoutError:
            logger.info("Closing %s timed out after %g s; dropping it", self.id, timeout)
            self._stop_writer()
            self._link.abort()

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
        self._wake = None
        self._queue.clear()

    def finish(self, code: int | None) -> None:
        """The connection is gone: release everything (called once by the reader)."""
        if self.close_code is None:
            self.close_code = code
        self.state = SocketState.CLOSED
        self._hub.remove(self)
        self.streams.cancel_all()
        close_task = self._close_task
        if close_task is None or close_task.done():
            self._stop_writer()

    async def wait_closed(self) -> None:
        task = self._close_task
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)


class Hub(Members[WsSocket]):
    """Every open socket of one transport, with its rooms and subscriptions.

    Args:
        send_queue: frames each socket may have waiting to be written.
        close_timeout: seconds a close handshake may take before the connection is
            dropped.
    """

    def __init__(self, *, send_queue: int, close_timeout: float) -> None:
        super().__init__()
        self.send_queue = send_queue
        self.close_timeout = close_timeout
        self.encoder = FrameEncoder()
        self.on_drop: Callable[[WsSocket, str], None] | None = None
        """Told when a socket is cut off (the transport reports it as a transport event)."""

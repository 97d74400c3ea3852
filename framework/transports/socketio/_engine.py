"""Engine.IO v4 sessions: one per client connection, over long-polling or WebSocket.

An ``EngineSession`` owns what is below Socket.IO: the session id, which transport
carries it (it starts on polling and may upgrade to WebSocket, or start on WebSocket),
heartbeats, and one ordered, bounded outbox. Every packet the server sends goes through
``write`` (replies: awaited by the reader, which is back-pressure) or ``push`` (emits,
broadcasts, pings: never wait). Over WebSocket a packet is written at once when nothing
is queued; over polling packets wait in the outbox for the client's next ``GET``. A
client whose outbox fills is too slow: its session is dropped, as the WebSocket
transport drops a slow reader.

The Socket.IO layer above sees a session through ``on_message`` (its packets) and
``on_close`` (the session ended); ``_asgi.py`` feeds the session what arrives. A
WebSocket's frames come and go through a ``Pipe``: ASGI messages (``_asgi.AsgiPipe``)
or picows frames (a ``PicowsLink``, ``_picows.py``); the session logic is the same.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from framework.transports._limits import PerClient, RateBucket
from framework.transports.socketio._packets import (
    EIO_CLOSE,
    EIO_MESSAGE,
    EIO_NOOP,
    EIO_PING,
    EIO_PONG,
    PacketError,
)

logger = logging.getLogger("framework.socketio")

POLLING = "polling"
WEBSOCKET = "websocket"


def new_id() -> str:
    """A random 20-character id (what socket.io's ids look like)."""
    return base64.urlsafe_b64encode(os.urandom(15)).decode()


class EngineState(enum.Enum):
    """OPEN -> CLOSED; never back."""

    OPEN = "open"
    CLOSED = "closed"


_OPEN = EngineState.OPEN
_CLOSED = EngineState.CLOSED

Packet = str | bytes
"""An Engine.IO packet as written: text (``4...``, ``2``) or a binary attachment."""


class Pipe(Protocol):
    """A session's WebSocket: ``str`` packets go as text frames, ``bytes`` as binary."""

    def try_write(self, packet: Packet) -> bool:
        """Write now if the connection takes it without waiting (else ``False``)."""

    async def send_wire(self, packet: Packet) -> bool:
        """Write, waiting while the client's buffer is full; ``False`` once it is gone."""

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame (and wait for the client's, where the pipe can)."""

    def abort(self) -> None:
        """Drop the TCP connection."""


class EngineSession:
    """One Engine.IO connection.

    Attributes:
        sid: the Engine.IO session id.
        transport: ``"polling"`` or ``"websocket"``.
        headers: the first request's headers (case-insensitive).
        query: the first request's query parameters.
        client: ``(host, port)`` of the peer, when known.
        state: ``EngineState``.
        close_reason: why it closed ("transport close", "ping timeout", ...).
    """

    __slots__ = (
        "_bucket",
        "_closing",
        "_engine",
        "_outbox",
        "_ping",
        "_pipe",
        "_poll",
        "_pong_due",
        "_sending",
        "_wake",
        "_writer",
        "client",
        "close_reason",
        "headers",
        "on_binary",
        "on_close",
        "on_message",
        "query",
        "sid",
        "state",
        "transport",
        "upgrading",
        "ws_task",
    )

    def __init__(
        self,
        engine: Engine,
        transport: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        client: tuple[str, int] | None,
    ) -> None:
        self.sid = new_id()
        self._engine = engine
        self.transport = transport
        self.headers = headers
        self.query = query
        self.client = client
        self.state = _OPEN
        self.close_reason = ""
        self.upgrading = False
        self._outbox: deque[Packet] = deque()
        self._poll: asyncio.Future[None] | None = None
        """Set while a polling ``GET`` waits for packets."""
        self._pipe: Pipe | None = None
        self._sending = 0
        """Writes waiting for the client's buffer: later packets must not pass them."""
        self._wake: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.ws_task: asyncio.Task[Any] | None = None
        """The task reading the WebSocket, once there is one (cancelled to drop it)."""
        self._closing: asyncio.Task[None] | None = None
        rate = engine.max_packet_rate
        self._bucket = RateBucket(rate) if rate is not None else None
        self._ping: asyncio.TimerHandle | None = None
        self._pong_due: asyncio.TimerHandle | None = None
        self.on_message: Callable[[EngineSession, str], Awaitable[None]] = _ignore
        self.on_binary: Callable[[EngineSession, bytes], Awaitable[None]] = _ignore
        self.on_close: Callable[[EngineSession], Awaitable[None]] = _nothing

    def __repr__(self) -> str:
        return f"EngineSession({self.sid!r}, {self.transport}, {self.state.value})"

    # -- writing ---------------------------------------------------------------------

    def write(self, packet: Packet) -> bool | Awaitable[bool]:
        """Send ``packet`` in order: a reply. Over WebSocket with nothing queued it is
        written at once when the connection takes it, else the caller gets the
        awaitable of the write (and waits on a client that reads slowly); otherwise the
        packet is queued and ``True`` returned."""
        if self.state is not _OPEN:
            return False
        pipe = self._pipe
        if pipe is not None and not self._outbox:
            if not self._sending and pipe.try_write(packet):
                return True
            return self._send(pipe, packet)
        return self.push(packet)

    def push(self, packet: Packet) -> bool:
        """Queue ``packet`` without waiting; drops the session when its outbox is full."""
        if self.state is not _OPEN:
            return False
        outbox = self._outbox
        if len(outbox) >= self._engine.send_queue:
            logger.warning(
                "Dropping Socket.IO session %s: %d packets wait for a client that reads too slowly",
                self.sid,
                len(outbox),
            )
            self._engine.on_drop(self, "send queue full")
            self.close("send queue full", abort=True)
            return False
        pipe = self._pipe
        if pipe is not None and not outbox and not self._sending and pipe.try_write(packet):
            return True
        outbox.append(packet)
        if pipe is not None:
            wake = self._wake
            if wake is not None:
                self._wake = None
                wake.set_result(None)
            elif self._writer is None:
                self._writer = asyncio.get_running_loop().create_task(self._write_ws())
        else:
            poll = self._poll
            if poll is not None and not poll.done():
                poll.set_result(None)
        return True

    async def _send(self, pipe: Pipe, packet: Packet) -> bool:
        self._sending += 1
        try:
            return await pipe.send_wire(packet)
        finally:
            self._sending -= 1

    async def _write_ws(self) -> None:
        outbox = self._outbox
        loop = asyncio.get_running_loop()
        while True:
            pipe = self._pipe
            if pipe is None:
                return
            while outbox:
                if not await self._send(pipe, outbox.popleft()):
                    outbox.clear()
                    return
            if self.state is not _OPEN:
                return
            wake = self._wake = loop.create_future()
            await wake

    async def take(self) -> list[Packet]:
        """For a polling ``GET``: wait until packets are queued (or the session closes),
        then take them all. ``PacketError`` when another ``GET`` is already waiting."""
        if self._poll is not None:
            raise PacketError("overlapping polling requests")
        if not self._outbox and self.state is _OPEN:
            poll = self._poll = asyncio.get_running_loop().create_future()
            try:
                await poll
            finally:
                self._poll = None
        packets = list(self._outbox)
        self._outbox.clear()
        if not packets:
            # Released without packets: the session closed, or moved to WebSocket.
            packets.append(EIO_CLOSE if self.state is _CLOSED else EIO_NOOP)
        return packets

    # -- the WebSocket upgrade -------------------------------------------------------

    def release_poll(self) -> None:
        """During an upgrade: answer a waiting ``GET`` with a NOOP so the client stops
        polling (or queue the NOOP for its next ``GET``)."""
        self.push(EIO_NOOP)

    def use_websocket(self, pipe: Pipe, task: asyncio.Task[Any] | None) -> None:
        """From now on packets go over this WebSocket (what polling had queued first)."""
        self.transport = WEBSOCKET
        self.upgrading = False
        self._pipe = pipe
        self.ws_task = task
        poll = self._poll
        if poll is not None and not poll.done():
            poll.set_result(None)
        if self._outbox and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_ws())

    # -- reading ---------------------------------------------------------------------

    async def receive(self, packet: str) -> None:
        """Handle one inbound Engine.IO text packet; ``PacketError`` when it is not one."""
        if self._bucket is not None and not self._within_rate():
            return
        kind = packet[:1]
        if kind == EIO_MESSAGE:
            await self.on_message(self, packet[1:])
        elif kind == EIO_PONG:
            self._pong()
        elif kind == EIO_CLOSE:
            self.close("client close")
        elif kind == EIO_PING:
            self.push(EIO_PONG + packet[1:])
        elif kind != EIO_NOOP:
            raise PacketError(f"unknown Engine.IO packet type {kind!r}")

    async def receive_binary(self, data: bytes) -> None:
        """Handle one inbound binary packet (an attachment of a binary Socket.IO packet)."""
        if self._bucket is not None and not self._within_rate():
            return
        await self.on_binary(self, data)

    def _within_rate(self) -> bool:
        """Spend a token; a session over its packet rate is closed (``False``)."""
        bucket = self._bucket
        assert bucket is not None
        if bucket.take():
            return True
        if self.state is _OPEN:
            logger.info("Closing Socket.IO session %s: over %g packets/s", self.sid, bucket.rate)
            self._engine.on_drop(self, "rate limit exceeded")
            self.close("rate limit exceeded")
        return False

    # -- heartbeats ------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        interval = self._engine.ping_interval
        if interval is not None:
            self._ping = asyncio.get_running_loop().call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping = None
        if self.state is not _OPEN:
            return
        self.push(EIO_PING)
        timeout = self._engine.ping_timeout
        if timeout is not None:
            self._pong_due = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def _pong(self) -> None:
        due, self._pong_due = self._pong_due, None
        if due is None:
            return  # a pong nobody asked for
        due.cancel()
        self.start_heartbeat()

    def _timed_out(self) -> None:
        self._pong_due = None
        logger.info("Socket.IO session %s sent no pong in time; closing it", self.sid)
        self.close("ping timeout", abort=True)

    # -- closing ---------------------------------------------------------------------

    def close(self, reason: str, *, abort: bool = False) -> None:
        """End the session (once): stop heartbeats, tell the Socket.IO layer, and close
        the WebSocket (``abort``: drop it without a close handshake) or let a waiting
        poll return the CLOSE packet."""
        if self.state is _CLOSED:
            return
        self.state = _CLOSED
        self.close_reason = reason
        for handle in (self._ping, self._pong_due):
            if handle is not None:
                handle.cancel()
        self._ping = self._pong_due = None
        self._engine.forget(self)
        self._closing = asyncio.get_running_loop().create_task(self._finish(abort))

    async def closed(self) -> None:
        """Wait until ``close`` has finished (the WebSocket's close frame is sent): the
        endpoint must not return before, or the server drops the connection without it."""
        closing = self._closing
        if closing is not None and closing is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await asyncio.shield(closing)

    async def _finish(self, abort: bool) -> None:
        try:
            await self.on_close(self)
        except Exception:
            logger.exception("Closing Socket.IO session %s failed", self.sid)
        pipe = self._pipe
        writer, self._writer = self._writer, None
        if pipe is None:
            poll = self._poll
            if poll is not None and not poll.done():
                poll.set_result(None)
            return
        if abort:
            self._outbox.clear()
            if writer is not None:
                writer.cancel()
            pipe.abort()
            task = self.ws_task
            if task is not None and not task.done():
                task.cancel("socket.io session dropped")
            return
        timeout = self._engine.close_timeout
        try:
            async with asyncio.timeout(timeout):
                if writer is not None and not writer.done():
                    wake, self._wake = self._wake, None
                    if wake is not None:
                        wake.set_result(None)
                    await asyncio.shield(writer)
                await pipe.close(1000, "")
        except TimeoutError:
            pipe.abort()
        finally:
            if writer is not None:
                writer.cancel()
            self._outbox.clear()


async def _ignore(session: EngineSession, data: Any) -> None:
    return None


async def _nothing(session: EngineSession) -> None:
    return None


class Engine:
    """Every Engine.IO session of one transport, and the settings they share.

    Args:
        ping_interval: seconds between the server's pings (``None``: none).
        ping_timeout: seconds a client has to answer a ping.
        max_payload: largest inbound packet or polling body, in bytes.
        send_queue: packets a session may have waiting before it is dropped.
        close_timeout: seconds a close may take before the connection is dropped.
        max_connections: open sessions (``None``: no limit).
        max_connections_per_client: open sessions from one client address.
        max_packet_rate: inbound packets per second one session may send.
    """

    def __init__(
        self,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
        max_payload: int,
        send_queue: int,
        close_timeout: float,
        max_connections: int | None = None,
        max_connections_per_client: int | None = None,
        max_packet_rate: float | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.per_client = PerClient(max_connections_per_client)
        self.max_packet_rate = max_packet_rate
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.send_queue = send_queue
        self.close_timeout = close_timeout
        self.sessions: dict[str, EngineSession] = {}
        self.on_drop: Callable[[EngineSession, str], None] = lambda session, why: None

    def open_payload(self, session: EngineSession) -> dict[str, Any]:
        """The handshake (``0{...}``) a new session starts with."""
        ms = int((self.ping_interval or 0) * 1000) or 2**31 - 1
        return {
            "sid": session.sid,
            "upgrades": ["websocket"] if session.transport == POLLING else [],
            "pingInterval": ms,
            "pingTimeout": int((self.ping_timeout or 0) * 1000) or 2**31 - 1,
            "maxPayload": self.max_payload,
        }

    def refusal(self, client: tuple[str, int] | None) -> str | None:
        """Why a new session from ``client`` is refused (over a limit), or ``None``."""
        if self.max_connections is not None and len(self.sessions) >= self.max_connections:
            return "Too many connections"
        if self.per_client.full(client[0] if client else None):
            return "Too many connections from this address"
        return None

    def new_session(
        self,
        transport: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        client: tuple[str, int] | None,
    ) -> EngineSession:
        """A session (``refusal`` said yes), counted until it closes."""
        session = EngineSession(self, transport, headers, query, client)
        self.sessions[session.sid] = session
        self.per_client.enter(client[0] if client else None)
        return session

    def forget(self, session: EngineSession) -> None:
        if self.sessions.pop(session.sid, None) is not None:
            self.per_client.leave(session.client[0] if session.client else None)

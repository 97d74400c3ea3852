"""WebSocket frame I/O on ``picows`` (a Cython WebSocket protocol), for the standalone
server and for upgrades on the app's port (``_uvicorn.py``).

Only the bytes differ from the other servers: each connection's frames go to the same
session logic (the WebSocket transport's ``Session``, Socket.IO's ``EngineSession``)
and its writes go out over a ``PicowsLink``.

picows asks for its listener synchronously when the upgrade request arrives, but
admission (connection guards) may be async. So a connection starts on
``UpgradeProtocol``, a plain protocol that reads the request, finds the ``Route`` that
serves its path, awaits the route's admission and answers 404/403 itself; an admitted
connection is switched to picows's protocol, which is fed the bytes read so far and
answers 101. A ``Route`` is what a transport serves this way: ``PicowsServer`` for the
WebSocket transport, ``socketio._picows.EngineRoute`` for Socket.IO.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl, urlsplit

from picows import WSAutoPingStrategy, WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from picows import picows as _picows_impl
from websockets.http11 import Request
from websockets.streams import StreamReader

from framework.transports.websocket._handshake import Handshake
from framework.transports.websocket._session import Connections

WRITE_LIMIT = 64 * 1024
"""Bytes a connection's write buffer may hold before writers wait (back-pressure)."""
READ_QUEUE = 16
"""Frames received but not yet handled before the connection stops being read (as
``websockets``' ``max_queue``); reading resumes below a quarter of it."""
HANDSHAKE_TIMEOUT = 10.0
"""Seconds a client has to send its upgrade request (``websockets``' ``open_timeout``)."""
READ_BUFFER = 4 * 1024
"""Bytes of a connection's first read buffer (picows grows it as frames need; its
default of 16 KiB made an idle connection cost about 34 KiB instead of about 22)."""
MAX_REQUEST = 16 * 1024
"""Bytes an upgrade request's head may take."""

_TEXT, _BINARY, _CONT, _CLOSE = (
    WSMsgType.TEXT,
    WSMsgType.BINARY,
    WSMsgType.CONTINUATION,
    WSMsgType.CLOSE,
)
# picows's server protocol: not in its stubs; ``ws_create_server`` builds it the same way.
_WSProtocol: Any = getattr(_picows_impl, "WSProtocol")  # noqa: B009
_picows_log = logging.getLogger("picows.server")
_access_log = logging.getLogger("uvicorn.error")


class PicowsLink(WSListener):
    """One picows connection: a bounded queue of received messages for the session's
    ``receive``, and the ``Link`` writes. Fragmented messages are joined here; a message
    over ``max_size`` closes the connection with 1009, as ``websockets`` does.

    By default every message is ``bytes`` and every write a text frame (the WebSocket
    transport's JSON). With ``text=True`` (Engine.IO, whose packets are text or binary
    attachments) a text message is received as ``str`` (invalid UTF-8 closes with 1007,
    as ``websockets`` does) and a ``bytes`` write is a binary frame.
    """

    def __init__(
        self, max_size: int, on_open: Callable[[PicowsLink], None], *, text: bool = False
    ) -> None:
        self._max_size = max_size
        self._on_open = on_open
        self._text = text
        self._bytes_kind = _BINARY if text else _TEXT
        self._frames: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._parts: list[bytes] | None = None
        self._parts_size = 0
        self._parts_text = False
        self._paused = False  # reading paused: the queue is full
        self._writable: asyncio.Future[None] | None = None  # set while writes wait
        self._write_paused = False
        self._gone = False
        self.transport: WSTransport | None = None
        self.close_code: int | None = None
        """The client's close code, once it sent one."""

    # -- picows callbacks --------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.underlying_transport.set_write_buffer_limits(high=WRITE_LIMIT)
        self._on_open(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is _TEXT or kind is _BINARY:
            if frame.fin:
                self._deliver(frame.get_payload_as_bytes(), kind is _TEXT)
            else:
                self._parts = []
                self._parts_size = 0
                self._parts_text = kind is _TEXT
                self._part(transport, frame)
        elif kind is _CONT:
            if self._parts is not None:
                self._part(transport, frame)
        elif kind is _CLOSE:
            self.close_code = frame.get_close_code().value
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        # PING and PONG: picows answers pings and tracks pongs itself.

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._gone = True
        self._wake()
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def pause_writing(self) -> None:
        # Also stop reading: picows answers each ping with a pong without back-pressure,
        # so a client that floods pings and never reads would grow the write buffer
        # without bound (issue 15, defect 2); the flood now waits in the socket buffers.
        self._write_paused = True
        if self.transport is not None:
            self.transport.underlying_transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is not None and not self._paused and not self._gone:
            self.transport.underlying_transport.resume_reading()  # unless our queue is full
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # -- receiving -----------------------------------------------------------------------

    def _part(self, transport: WSTransport, frame: WSFrame) -> None:
        parts = self._parts
        assert parts is not None
        payload = frame.get_payload_as_bytes()
        self._parts_size += len(payload)
        if self._parts_size > self._max_size:
            self._parts = None
            transport.send_close(WSCloseCode.MESSAGE_TOO_BIG, b"message too big")
            return
        parts.append(payload)
        if frame.fin:
            self._parts = None
            self._deliver(b"".join(parts), self._parts_text)

    def _deliver(self, message: bytes, text: bool) -> None:
        if self._text and text:
            try:
                self._frames.append(message.decode())
            except UnicodeDecodeError:
                assert self.transport is not None
                self.transport.send_close(WSCloseCode.INVALID_TEXT, b"invalid UTF-8")
                return
        else:
            self._frames.append(message)
        frames = self._frames
        self._wake()
        if len(frames) >= READ_QUEUE and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.underlying_transport.pause_reading()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> Any:
        """The next message (``bytes``, or ``str`` for text with ``text=True``); ``None``
        once the client has gone and all were handled."""
        frames = self._frames
        while not frames:
            if self._gone:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        message = frames.popleft()
        if self._paused and len(frames) <= READ_QUEUE // 4 and not self._gone:
            self._paused = False
            assert self.transport is not None
            if not self._write_paused:  # else resume_writing resumes reading
                self.transport.underlying_transport.resume_reading()
        return message

    # -- the Link --------------------------------------------------------------------------

    def wire(self, frame: bytes) -> bytes:
        return frame

    def _open(self) -> bool:
        t = self.transport
        return t is not None and not self._gone and not t.is_close_frame_sent

    def try_write(self, frame: Any) -> bool:
        if self._write_paused or not self._open():
            return False
        assert self.transport is not None
        self.transport.send(_TEXT if frame.__class__ is str else self._bytes_kind, frame)
        return True

    async def send_wire(self, frame: Any) -> bool:
        while self._write_paused and self._open():
            if self._writable is None:
                self._writable = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._writable)
        if not self._open():
            return False
        assert self.transport is not None
        self.transport.send(_TEXT if frame.__class__ is str else self._bytes_kind, frame)
        return True

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame and wait for the client's (the caller bounds the wait)."""
        transport = self.transport
        if transport is None or self._gone:
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode())
        await transport.wait_disconnected()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.underlying_transport.abort()


Fallback = Callable[[], asyncio.Protocol]
"""Makes the protocol for an upgrade to a path no route serves (on the app's port:
uvicorn's own WebSocket protocol, so other WebSocket routes keep working)."""

Client = tuple[str, int] | None


class Route(Protocol):
    """WebSocket paths a transport serves on picows."""

    def serves(self, path: str) -> bool:
        """Whether an upgrade to ``path`` (without its query) is this route's."""

    async def admit(self, request: Request, client: Client) -> PicowsLink | None:
        """The link for an admitted upgrade request (its ``on_open`` starts the
        session), or ``None`` to answer 403."""

    def protocol(self, link: PicowsLink) -> Any:
        """picows's protocol for an admitted connection (``picows_protocol``)."""


def picows_protocol(
    link: PicowsLink,
    *,
    ping_interval: float | None,
    ping_timeout: float | None,
    max_frame_size: int,
) -> Any:
    """picows's server protocol for an admitted connection, reading into ``link``."""
    ping = ping_interval is not None
    return _WSProtocol(
        None,  # host and port: a server protocol has none
        None,  # path
        False,  # client side
        lambda _request: link,  # admission already said yes
        _picows_log,
        True,  # disconnect when on_ws_frame raises
        None,  # handshake timeout: UpgradeProtocol had it
        ping,  # keepalive pings
        ping_interval if ping else 20.0,
        # ping_timeout=None waits forever: picows needs a number.
        ping_timeout if ping_timeout is not None else 1e9,
        WSAutoPingStrategy.PING_WHEN_IDLE,
        True,  # answer pings
        max_frame_size,
        None,  # extra headers
        READ_BUFFER,
    )


def _parse(head: bytes) -> Request | None:
    """The upgrade request in ``head`` (which holds its end), or ``None`` if malformed."""
    reader = StreamReader()
    reader.feed_data(head)
    parser = Request.parse(reader.read_line)
    try:
        next(parser)
    except StopIteration as done:
        request: Request = done.value
        return request
    except Exception:
        return None
    return None  # the head ended but the parser wants more: malformed


class UpgradeProtocol(asyncio.Protocol):
    """A connection until it is admitted: reads the upgrade request, finds the route
    serving its path, awaits its admission, answers 404/403, or hands the connection to
    picows.

    With a ``fallback`` (on the app's port), a request for a path no route serves is
    handed to the fallback protocol instead, and this one forwards every callback to it.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        fallback: Fallback | None = None,
        timeout: float | None = HANDSHAKE_TIMEOUT,
    ) -> None:
        self._routes = routes
        self._timeout = timeout
        self._fallback = fallback
        self._delegate: asyncio.Protocol | None = None
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        if self._timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(self._timeout, self._due)

    def _due(self) -> None:
        """The handshake was not done in time (a slowloris, or admission hanging)."""
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._delegate is None:
            transport.abort()
        elif not getattr(self._delegate, "handshake_complete", True):
            transport.close()  # the app did not accept or refuse in time

    def data_received(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.data_received(data)
            return
        self._buffer += data
        if self._task is not None:
            return  # arrived before pause_reading took effect; fed to picows later
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_REQUEST:
                self._respond(431, "Request Header Fields Too Large\n")
            return
        request = _parse(bytes(self._buffer[: end + 4]))
        if request is None:
            self._respond(400, "Bad Request\n")
            return
        path = urlsplit(request.path).path
        route = next((r for r in self._routes if r.serves(path)), None)
        if route is None:
            if self._fallback is None:
                self._respond(404, "Not Found\n")
            else:
                self._hand_over()
            return
        assert self._transport is not None
        self._transport.pause_reading()
        self._task = asyncio.get_running_loop().create_task(self._admit(route, request))

    def _hand_over(self) -> None:
        assert self._fallback is not None and self._transport is not None
        delegate = self._delegate = self._fallback()
        delegate.connection_made(self._transport)
        delegate.data_received(bytes(self._buffer))
        self._buffer.clear()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self._delegate is not None:
            self._delegate.connection_lost(exc)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def eof_received(self) -> bool | None:
        return self._delegate.eof_received() if self._delegate is not None else None

    def pause_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.pause_writing()

    def resume_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.resume_writing()

    def _respond(self, status: int, body: str) -> None:
        transport = self._transport
        assert transport is not None
        reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(status, "Error")
        payload = body.encode()
        transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        transport.close()

    async def _admit(self, route: Route, request: Request) -> None:
        transport = self._transport
        assert transport is not None
        peer = transport.get_extra_info("peername")
        link = await route.admit(request, (peer[0], peer[1]) if peer else None)
        if self._fallback is not None:
            # On the app's port, the access line uvicorn writes for its own upgrades
            # (its logger, so the query redaction filter applies).
            client = f"{peer[0]}:{peer[1]}" if peer else "-"
            verdict = "accepted" if link is not None else "rejected"
            _access_log.info('%s - "WebSocket %s" [%s]', client, request.path, verdict)
        if link is None:
            self._respond(403, "Forbidden\n")
            return
        if transport.is_closing():
            return
        self._stop_timer()
        # picows validates the upgrade headers (400 if bad), answers 101, then calls
        # on_ws_connected, which starts the session.
        protocol = route.protocol(link)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        data = bytes(self._buffer)
        while data:
            view = protocol.get_buffer(len(data))
            n = min(len(view), len(data))
            view[:n] = data[:n]
            protocol.buffer_updated(n)
            data = data[n:]
        transport.resume_reading()


class PicowsServer:
    """The WebSocket transport on picows: its ``Route`` on the app's port, and the
    standalone server; runs one ``Session`` per connection."""

    def __init__(
        self,
        connections: Connections,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
    ) -> None:
        self.connections = connections
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    # -- the Route ---------------------------------------------------------------------

    def serves(self, path: str) -> bool:
        return path in self.connections.endpoints

    async def admit(self, request: Request, client: Client) -> PicowsLink | None:
        url = urlsplit(request.path)
        handshake = Handshake(
            path=url.path,
            headers=request.headers,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            client=client,
        )
        connections = self.connections
        if not await connections.admit(handshake):
            return None
        return PicowsLink(
            connections.max_message_size, lambda opened: self.start_session(opened, handshake)
        )

    def protocol(self, link: PicowsLink) -> Any:
        return picows_protocol(
            link,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            max_frame_size=self.connections.max_message_size,
        )

    # -- sessions ----------------------------------------------------------------------

    def start_session(self, link: PicowsLink, handshake: Handshake) -> None:
        task = asyncio.get_running_loop().create_task(self._run(link, handshake))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _run(self, link: PicowsLink, handshake: Handshake) -> None:
        session = self.connections.session(link, handshake)
        session.socket.reader = asyncio.current_task()
        try:
            await session.run(link.receive)
        finally:
            await session.close(link.close_code)

    async def start(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: UpgradeProtocol((self,)), host, port)
        return self.server

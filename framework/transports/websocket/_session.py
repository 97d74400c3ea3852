"""One connection's life (``Session``) and what every connection of a transport shares
(``Connections``).

A server adapter (``_asgi.py`` on the app's port, ``_standalone.py`` on its own
``websockets`` server) admits a handshake, makes a ``WsSocket`` over its ``Link``, and
hands ``Session.run`` its way of receiving a frame. ``run`` is the one read loop:
``open`` (authentication, ``on_connection``), then ``on_frame`` for each frame, in
order; the adapter calls ``close`` once the connection is gone. Every frame the session
writes goes through the socket's ordered path (``WsSocket.write``), as pushes do.

A session is a state machine, CONNECTING -> OPEN -> CLOSED (or CONNECTING -> CLOSED
when it is refused); an illegal step raises ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from framework.messaging.codecs import encode
from framework.messaging.dispatch import (
    NOT_FOUND,
    Failure,
    Handled,
    Inbound,
    Outcome,
    Reply,
    Stream,
)
from framework.messaging.streams import close, drive
from framework.transports._inflight import InFlight
from framework.transports._limits import PerClient, RateBucket
from framework.transports._members import subscription_refusal
from framework.transports.base import NO_EVENTS, TransportEvents
from framework.transports.websocket._endpoint import Endpoint, call_hooks
from framework.transports.websocket._frames import (
    CANCEL_EVENT,
    CONTROL_EVENTS,
    SUBSCRIBE_EVENT,
    UNSUBSCRIBE_EVENT,
    FrameEncoder,
    FrameError,
    encode_id,
    parse,
)
from framework.transports.websocket._handshake import Guard, Handshake, admit, origin_allowed
from framework.transports.websocket._socket import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    Hub,
    Link,
    SocketState,
    WsSocket,
)

logger = logging.getLogger("framework.websocket")

Authenticate = Callable[[WsSocket, Any], "bool | Awaitable[bool]"]
SubscriptionGuard = Callable[[WsSocket, str], "bool | Awaitable[bool]"]
Receive = Callable[[], Awaitable[Any]]
"""The adapter's receive: awaits the next inbound message (raising when the connection
is gone is fine: the exception leaves ``run``)."""
Unwrap = Callable[[Any], "str | bytes | None"]
"""The frame in a received message; ``None`` when the message says the client left."""

_SHUTTING_DOWN = {"status": "error", "message": "Server is shutting down"}
_TOO_MANY = {"status": "error", "message": "Too many open streams on this connection"}
_BAD_CANCEL = {
    "status": "error",
    "message": '"cancel" takes the id of a running stream (a string or an integer)',
}
_OPEN = SocketState.OPEN

FAIR_SHARE = 16
"""Frames a connection handles before letting the other connections run."""


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Connections:
    """What every connection of one transport shares: admission, limits, the sockets'
    hub and the count of frames being handled (for a graceful drain).

    The arguments are ``WebSocketTransport``'s of the same names.
    """

    def __init__(
        self,
        hub: Hub,
        *,
        max_message_size: int,
        max_streams: int,
        max_subscriptions: int,
        max_concurrency: int,
        allowed_origins: frozenset[str] | None,
        guards: Sequence[Guard],
        authenticate: Authenticate | None,
        auth_timeout: float,
        can_subscribe: SubscriptionGuard | None,
        max_connections: int | None = None,
        max_connections_per_client: int | None = None,
        max_frame_rate: float | None = None,
    ) -> None:
        self.hub = hub
        self.max_connections = max_connections
        self.max_connections_per_client = max_connections_per_client
        self.max_frame_rate = max_frame_rate
        self.per_client = PerClient(max_connections_per_client)
        """Open sessions by client address."""
        self.max_message_size = max_message_size
        self.max_streams = max_streams
        self.max_subscriptions = max_subscriptions
        self.max_concurrency = max_concurrency
        self.allowed_origins = allowed_origins
        self.guards = tuple(guards)
        self.authenticate = authenticate
        self.auth_timeout = auth_timeout
        self.can_subscribe = can_subscribe
        self.endpoints: dict[str, Endpoint] = {}
        self.accepting = False
        self.draining = False
        self.inflight = InFlight()
        """Frames being handled now."""
        self.owner: Any = None
        """The transport, named in transport events (set at start)."""
        self.events: TransportEvents = NO_EVENTS
        """The host's transport events (set at start)."""

    async def admit(self, handshake: Handshake) -> bool:
        """Whether to accept a connection (open for business, origin list, guards)."""
        if not self.accepting or handshake.path not in self.endpoints:
            return False
        if not origin_allowed(handshake.origin, self.allowed_origins):
            logger.info("WebSocket refused: origin %r is not allowed", handshake.origin)
            return False
        return not self.guards or await admit(handshake, self.guards)

    def session(self, link: Link, handshake: Handshake) -> Session:
        """A session for an admitted connection (``admit`` said yes) over ``link``."""
        sock = WsSocket(
            self.hub,
            link,
            path=handshake.path,
            headers=handshake.headers,
            query=handshake.query,
            client=handshake.client,
            data=handshake.data,
        )
        return Session(self, self.endpoints[handshake.path], sock)

    def enter(self, sock: WsSocket) -> str | None:
        """Count a socket that is opening; the reason to refuse it when over a limit
        (it is then not counted)."""
        if self.max_connections is not None and len(self.hub.sockets) > self.max_connections:
            return "too many connections"
        if not self.per_client.enter(sock.client[0] if sock.client else None):
            return "too many connections from this address"
        return None

    def leave(self, sock: WsSocket) -> None:
        """Uncount a socket that ``enter`` counted."""
        self.per_client.leave(sock.client[0] if sock.client else None)

    def too_big(self, raw: str | bytes) -> bool:
        limit = self.max_message_size
        if len(raw) <= limit:
            # A str's UTF-8 form may be up to 4 bytes a character.
            return raw.__class__ is str and len(raw) * 4 > limit and len(raw.encode()) > limit
        return True


class SessionState(enum.Enum):
    """A session's lifecycle (see the module docstring)."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


_CONNECTING, _SESSION_OPEN, _CLOSED = SessionState
_MOVES = {
    _CONNECTING: frozenset({_SESSION_OPEN, _CLOSED}),
    _SESSION_OPEN: frozenset({_CLOSED}),
    _CLOSED: frozenset(),
}


class Session:
    """One connection: ``open``, then ``on_frame`` per frame, then ``close``.

    Attributes:
        socket: the ``WsSocket`` handlers and gateways see.
        state: ``SessionState``.
    """

    __slots__ = (
        "_conns",
        "_counted",
        "_dispatcher",
        "_enc",
        "_left",
        "_reported",
        "_tasks",
        "endpoint",
        "socket",
        "state",
    )

    def __init__(self, connections: Connections, endpoint: Endpoint, socket: WsSocket) -> None:
        self._conns = connections
        self._dispatcher = endpoint.dispatcher
        self._enc: FrameEncoder = connections.hub.encoder
        self.endpoint = endpoint
        self.socket = socket
        self.state = _CONNECTING
        self._left = False  # the client left while the session was opening
        self._reported = False  # host.events was told it connected
        self._counted = False  # connections.enter counted it
        self._tasks: set[asyncio.Task[None]] = set()  # frames in tasks (max_concurrency)

    def __repr__(self) -> str:
        return f"Session({self.socket.id!r}, {self.state.value})"

    def _move(self, to: SessionState) -> None:
        if to not in _MOVES[self.state]:
            raise RuntimeError(
                f"A WebSocket session cannot go from {self.state.value} to {to.value}"
            )
        self.state = to

    # -- the read loop ---------------------------------------------------------------

    async def run(self, receive: Receive, unwrap: Unwrap | None = None) -> None:
        """Open the session, then handle every frame until the client leaves.

        Args:
            receive: awaits the next inbound message.
            unwrap: the frame in a message (``None`` when the client left); without it,
                ``receive`` returns frames as they are.
        """
        if not await self.open(receive, unwrap):
            # Refused: the socket is closing; read until the client has gone.
            while not self._left:
                message = await receive()
                if (message if unwrap is None else unwrap(message)) is None:
                    return
            return
        sock = self.socket
        conns = self._conns
        on_frame = self.on_frame
        limit = conns.max_message_size
        gate = asyncio.Semaphore(conns.max_concurrency) if conns.max_concurrency > 1 else None
        bucket = None if conns.max_frame_rate is None else RateBucket(conns.max_frame_rate)
        turn = 0
        while True:
            raw = await receive() if unwrap is None else unwrap(await receive())
            if raw is None:
                return
            if bucket is not None and not bucket.take() and sock.state is _OPEN:
                logger.info("Closing %s: more than %g frames/s", sock.id, bucket.rate)
                sock.begin_close(CLOSE_POLICY, "rate limit exceeded", flush=False)
            turn += 1
            if turn == FAIR_SHARE:
                # ``receive`` returns at once while frames are buffered, and a handler
                # that does not wait never yields: without this, one flooding client
                # would hold the event loop for a whole read buffer of frames.
                turn = 0
                await asyncio.sleep(0)
            if sock.state is not _OPEN:
                continue  # closing: what the client still sends is not handled
            if len(raw) * 4 > limit and conns.too_big(raw):
                logger.info("Closing %s: frame larger than %d bytes", sock.id, limit)
                sock.begin_close(CLOSE_TOO_BIG, "message too big", flush=False)
                continue
            if gate is None:
                # The hot path: handled in this task, the reply written from it.
                await on_frame(raw)
                continue
            await gate.acquire()
            task = asyncio.get_running_loop().create_task(self._in_task(gate, raw))
            self._tasks.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)

    async def _in_task(self, gate: asyncio.Semaphore, raw: str | bytes) -> None:
        try:
            if self.state is _SESSION_OPEN:  # the client may have left since
                await self.on_frame(raw)
        finally:
            gate.release()

    # -- the states ------------------------------------------------------------------

    async def open(self, receive: Receive, unwrap: Unwrap | None = None) -> bool:
        """Authenticate (when configured) and call ``on_connection``; ``False`` means
        the connection was refused and its socket is closing."""
        if self.state is not _CONNECTING:
            raise RuntimeError(f"open() on a session that is {self.state.value}")
        sock = self.socket
        conns = self._conns
        conns.hub.add(sock)
        conns.events.connected(conns.owner, sock.id)
        self._reported = True
        refused = conns.enter(sock)
        if refused is not None:
            logger.info("Closing %s: %s", sock.id, refused)
            sock.begin_close(CLOSE_TRY_AGAIN_LATER, refused, flush=False)
            return False
        self._counted = True
        if self._conns.authenticate is not None and not await self._authenticate(receive, unwrap):
            return False
        try:
            await call_hooks(self.endpoint.gateways, "on_connection", sock)
        except Exception:
            logger.exception("on_connection failed for %s; closing it", sock.id)
            sock.begin_close(CLOSE_INTERNAL_ERROR, "internal error", flush=False)
            return False
        if sock.state is not _OPEN:
            return False
        self._move(_SESSION_OPEN)
        return True

    async def close(self, code: int | None) -> None:
        """The connection is gone (``code``: the client's close code, if it sent one):
        release the socket, end its streams, call ``on_disconnect``."""
        reported = self._reported
        self._move(_CLOSED)
        sock = self.socket
        sock.finish(code)
        if self._counted:
            self._conns.leave(sock)
        if reported:
            self._conns.events.disconnected(self._conns.owner, sock.id)
        self._dispatcher.feeds.end(sock)  # its inbound streams end with it
        try:
            await call_hooks(self.endpoint.gateways, "on_disconnect", sock)
        except Exception:
            logger.exception("on_disconnect failed for %s", sock.id)

    async def on_frame(self, raw: str | bytes) -> None:
        """Handle one inbound frame and write what answers it."""
        if self.state is not _SESSION_OPEN:
            raise RuntimeError(f"on_frame() on a session that is {self.state.value}")
        enc = self._enc
        try:
            event, data, fid, headers, frame = parse(raw)
        except FrameError as err:
            reply: bytes | None = enc.exception(err.payload(), err.id)
        else:
            conns = self._conns
            if conns.draining:
                reply = enc.exception(_SHUTTING_DOWN, fid)
            else:
                conns.inflight.enter()
                try:
                    inbound = Inbound(event, data, headers, frame, self.socket)
                    outcome = await self._dispatcher.dispatch(inbound)
                    if isinstance(outcome, Reply):
                        name = event if outcome.event is None else outcome.event
                        reply = enc.reply(name, outcome.data, fid)
                    else:
                        reply = await self._other(outcome, event, data, fid)
                finally:
                    conns.inflight.leave()
        if reply is not None:
            written = self.socket.write(reply)
            if not isinstance(written, bool):
                await written

    async def _other(self, outcome: Outcome, event: str, data: Any, fid: Any) -> bytes | None:
        """The frame answering an outcome other than a ``Reply`` (``None``: nothing)."""
        enc = self._enc
        if isinstance(outcome, Handled):
            error = outcome.error
            if error is not None:
                return enc.exception(error, fid)
            return None if fid is None else enc.reply(event, b"null", fid)
        if isinstance(outcome, Stream):
            return await self._start_stream(outcome, event, fid)
        if isinstance(outcome, Failure):
            return enc.exception(outcome.payload, fid)
        assert outcome is NOT_FOUND
        if event in CONTROL_EVENTS:
            return await self._control(event, data, fid)
        return enc.exception(NOT_FOUND.payload, fid)

    # -- streams ---------------------------------------------------------------------

    async def _start_stream(self, outcome: Stream, event: str, fid: Any) -> bytes | None:
        sock = self.socket
        if fid is not None and fid in sock.streams:
            name = encode_id(fid).decode()
            message = f"A stream with id {name} is already running on this connection"
            payload: Mapping[str, Any] = {"status": "error", "message": message}
        elif len(sock.streams) >= self._conns.max_streams:
            payload = _TOO_MANY
        else:
            respond = _Respond(sock, self._enc, event, fid)
            task = asyncio.get_running_loop().create_task(
                drive(outcome.source, respond, where=outcome.handler.name)
            )
            sock.streams.add(fid, task)
            return None
        await close(outcome.source)  # never iterated: its body does not run
        return self._enc.exception(payload, fid)

    # -- the events the transport answers itself --------------------------------------

    async def _control(self, event: str, data: Any, fid: Any) -> bytes | None:
        enc = self._enc
        sock = self.socket
        if event == CANCEL_EVENT:
            if data.__class__ is not str and data.__class__ is not int:
                return enc.exception(_BAD_CANCEL, fid)
            found = sock.streams.cancel(data)
            return enc.reply(event, b"true" if found else b"false", fid)
        patterns = [data] if isinstance(data, str) else data
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            message = f'"{event}" takes a pattern or a list of patterns'
            return enc.exception({"status": "error", "message": message}, fid)
        hub = self._conns.hub
        if event == UNSUBSCRIBE_EVENT:
            for p in patterns:
                hub.unsubscribe(sock, p)
        else:
            assert event == SUBSCRIBE_EVENT
            problem = await subscription_refusal(
                sock,
                patterns,
                limit=self._conns.max_subscriptions,
                can_subscribe=self._conns.can_subscribe,
            )
            if problem is not None:
                return enc.exception(problem, fid)
            if sock.state is not _OPEN:
                return None
            for p in patterns:
                hub.subscribe(sock, p)
        return enc.reply(event, encode(sorted(sock.subscriptions_)), fid)

    # -- authentication ----------------------------------------------------------------

    async def _authenticate(self, receive: Receive, unwrap: Unwrap | None) -> bool:
        check = self._conns.authenticate
        assert check is not None
        sock = self.socket
        try:
            async with asyncio.timeout(self._conns.auth_timeout):
                message = await receive()
        except TimeoutError:
            sock.begin_close(CLOSE_POLICY, "authentication timeout", flush=False)
            return False
        raw = message if unwrap is None else unwrap(message)
        if raw is None:
            self._left = True
            return False
        ok = False
        fid = None
        try:
            event, data, fid, _, _ = parse(raw)
            if event == "auth":
                ok = bool(await _maybe_await(check(sock, data)))
        except FrameError:
            ok = False
        except Exception as exc:
            logger.warning("authenticate raised %s; connection refused", type(exc).__name__)
            ok = False
        if not ok:
            sock.begin_close(CLOSE_POLICY, "unauthorized", flush=False)
            return False
        await sock.send_now(self._enc.reply("auth", b"true", fid))
        return True


class _Respond:
    """The stream driver's writes for one streamed reply: item, end and error frames,
    through the socket's ordered path."""

    __slots__ = ("enc", "event", "fid", "sock")

    def __init__(self, sock: WsSocket, enc: FrameEncoder, event: str, fid: Any) -> None:
        self.sock = sock
        self.enc = enc
        self.event = event
        self.fid = fid

    async def item(self, data: bytes) -> bool:
        return await self.sock.send_now(self.enc.item(self.event, data, self.fid))

    async def end(self, last: bytes | None) -> None:
        await self.sock.send_now(self.enc.done(self.event, self.fid))

    async def error(self, payload: dict[str, Any]) -> None:
        await self.sock.send_now(self.enc.exception(payload, self.fid))

"""The Socket.IO layer: namespaces, connecting to them, and handling events.

``Connection`` reads the Socket.IO packets of one Engine.IO session and routes them to
the ``Namespace`` they name; a namespace holds its sockets, rooms and subscriptions,
the dispatcher of the handlers it serves and its gateways' hooks and connect guards.

An event is handled as NestJS's platform-socket.io does it (docs/transports/socketio.md
has the whole table): the arguments become the payload (one argument as it is, several
as a list), the handler's result is the ack when the client asked for one, a
``WsResponse`` is emitted as its own event, and an error is emitted as ``exception``
``{"status": "error", "message": ...}`` and also given to the ack, so no ack waits
forever.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from framework.messaging.codecs import encode
from framework.messaging.context import ExecutionContext
from framework.messaging.dispatch import (
    NOT_FOUND,
    Dispatcher,
    Failure,
    Handled,
    Inbound,
    Outcome,
    Reply,
    Stream,
    last_reply,
)
from framework.messaging.errors import error_payload
from framework.messaging.router import MessageHandler
from framework.messaging.streams import close, drive
from framework.transports._inflight import InFlight
from framework.transports._members import Members, subscription_refusal
from framework.transports.base import NO_EVENTS, TransportEvents
from framework.transports.socketio import _packets as packets
from framework.transports.socketio._engine import EngineSession
from framework.transports.socketio._recovery import Recovery
from framework.transports.socketio.socket import SioContext, SioSocket, SioState
from framework.transports.websocket._endpoint import call_hooks
from framework.transports.websocket._handshake import Guard, Handshake, admit

logger = logging.getLogger("framework.socketio")

TRANSPORT = "socketio"
EXCEPTION_EVENT = "exception"
STREAM_EVENT = "stream"
CANCEL_EVENT = "cancel"
SUBSCRIBE_EVENT = "subscribe"
UNSUBSCRIBE_EVENT = "unsubscribe"
CONTROL_EVENTS = frozenset({STREAM_EVENT, CANCEL_EVENT, SUBSCRIBE_EVENT, UNSUBSCRIBE_EVENT})
"""Events the transport answers itself; no handler may declare them on "socketio"."""

SubscriptionGuard = Callable[[SioSocket, str], "bool | Awaitable[bool]"]

_EXCEPTION_NAME = packets.name_json(EXCEPTION_EVENT)
_STREAM_NAME = packets.name_json(STREAM_EVENT)
_SHUTTING_DOWN = {"status": "error", "message": "Server is shutting down"}
_TOO_MANY = {"status": "error", "message": "Too many open streams on this connection"}
_BAD_STREAM = {
    "status": "error",
    "message": '"stream" takes {"id": <string or integer>, "event": <name>, "data": ...}',
}
_BAD_CANCEL = {
    "status": "error",
    "message": '"cancel" takes the id of a running stream (a string or an integer)',
}
_CONNECTED = SioState.CONNECTED


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _connect_placeholder() -> None:
    """``ExecutionContext.handler`` of a connect guard on a gateway without
    ``on_connection``."""


class Server:
    """What every namespace of one transport shares: limits, guards, drain state and
    the host's transport events. The arguments are ``SocketIoTransport``'s."""

    def __init__(
        self,
        *,
        max_streams: int,
        max_subscriptions: int,
        max_concurrency: int,
        guards: Sequence[Guard],
        can_subscribe: SubscriptionGuard | None,
        path: str,
    ) -> None:
        self.max_streams = max_streams
        self.max_subscriptions = max_subscriptions
        self.max_concurrency = max_concurrency
        self.guards = tuple(guards)
        self.can_subscribe = can_subscribe
        self.path = path
        self.namespaces: dict[str, Namespace] = {}
        self.recovery: Recovery | None = None
        self.draining = False
        self.inflight = InFlight()
        self.owner: Any = None
        self.events: TransportEvents = NO_EVENTS

    def attach(self, session: EngineSession) -> None:
        """Serve Socket.IO on a new Engine.IO session."""
        conn = Connection(self, session)
        session.on_message = conn.on_message
        session.on_binary = conn.on_binary
        session.on_close = conn.on_close


class Connection:
    """The Socket.IO side of one Engine.IO session: its sockets, one per namespace."""

    __slots__ = ("_binary", "_gate", "_server", "_tasks", "handling", "session", "sockets")

    def __init__(self, server: Server, session: EngineSession) -> None:
        self._server = server
        self.session = session
        self.sockets: dict[str, SioSocket] = {}
        self._binary: tuple[packets.Packet, list[bytes]] | None = None
        limit = server.max_concurrency
        self._gate = asyncio.Semaphore(limit) if limit > 1 else None
        self._tasks: set[asyncio.Task[None]] = set()  # events in tasks (max_concurrency)
        self.handling: asyncio.Task[Any] | None = None
        """The reader's task while it handles an event itself (``max_concurrency=1``)."""

    async def _event(self, sock: SioSocket, ack_id: int | None, args: list[Any]) -> None:
        """Handle an event: in this task (in order, the default), or, with
        ``max_concurrency`` > 1, in a task of its own once a slot is free (reading
        waits for one: back-pressure)."""
        gate = self._gate
        if gate is None:
            self.handling = asyncio.current_task()
            try:
                await sock._ns.on_event(sock, ack_id, args)
            finally:
                self.handling = None
            return
        await gate.acquire()
        task = asyncio.get_running_loop().create_task(self._in_task(gate, sock, ack_id, args))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _in_task(
        self, gate: asyncio.Semaphore, sock: SioSocket, ack_id: int | None, args: list[Any]
    ) -> None:
        try:
            if sock.state is _CONNECTED:  # the client may have left since
                await sock._ns.on_event(sock, ack_id, args)
        finally:
            gate.release()

    async def on_message(self, session: EngineSession, text: str) -> None:
        if self._binary is not None:
            raise packets.PacketError("a text packet where a binary attachment was due")
        event = packets.decode_event(text)
        if event is not None:
            sock = self.sockets.get("/")
            if sock is not None:
                await self._event(sock, event[0], event[1])
            return
        pkt = packets.decode(text)
        if pkt.attachments:
            self._binary = (pkt, [])
            return
        await self._handle(pkt)

    async def on_binary(self, session: EngineSession, data: bytes) -> None:
        pending = self._binary
        if pending is None:
            raise packets.PacketError("a binary packet nobody announced")
        pkt, parts = pending
        parts.append(data)
        if len(parts) < pkt.attachments:
            return
        self._binary = None
        pkt.data = packets.fill_placeholders(pkt.data, parts)
        pkt.type = packets.EVENT if pkt.type == packets.BINARY_EVENT else packets.ACK
        await self._handle(pkt)

    async def _handle(self, pkt: packets.Packet) -> None:
        kind = pkt.type
        if kind == packets.EVENT:
            sock = self.sockets.get(pkt.namespace)
            if sock is not None:
                await self._event(sock, pkt.id, pkt.data)
            return  # socket.io ignores events for a namespace the client is not in
        if kind == packets.CONNECT:
            await self._connect(pkt)
        elif kind == packets.DISCONNECT:
            sock = self.sockets.get(pkt.namespace)
            if sock is not None:
                await sock._ns.leave(sock, "client namespace disconnect")
        elif kind == packets.ACK:
            sock = self.sockets.get(pkt.namespace)
            if sock is not None:
                sock.acked(pkt.id, pkt.data)
        else:
            raise packets.PacketError("a packet type clients do not send")

    async def _connect(self, pkt: packets.Packet) -> None:
        name = pkt.namespace
        pfx = packets.prefix(name)
        ns = self._server.namespaces.get(name)
        if ns is None:
            self.session.push(packets.connect_error(pfx, "Invalid namespace"))
            return
        if name in self.sockets:
            raise packets.PacketError(f"connected twice to namespace {name!r}")
        sock = await ns.connect(self, pkt.data or {})
        if sock is not None:
            self.sockets[name] = sock

    async def on_close(self, session: EngineSession) -> None:
        """The Engine.IO session ended: every namespace socket disconnects."""
        for sock in list(self.sockets.values()):
            await sock._ns.leave(sock, session.close_reason or "transport close")
        self.sockets.clear()


class Namespace:
    """One served namespace: its handlers, gateways, sockets, rooms and subscriptions."""

    def __init__(
        self,
        name: str,
        server: Server,
        dispatcher: Dispatcher,
        gateways: list[Any],
        connect_guards: list[tuple[Any, type]],
    ) -> None:
        self.name = name
        self.prefix = packets.prefix(name)
        self.server = server
        self.dispatcher = dispatcher
        self.gateways = gateways
        self.connect_guards = connect_guards
        """``(guard instance, gateway class)``: a gateway's ``use_guards`` run at connect."""
        self.members: Members[SioSocket] = Members()
        self._names: dict[str, str] = {}

    def name_json(self, event: str) -> str:
        """An event name's JSON, cached for the names handlers declare."""
        found = self._names.get(event)
        if found is None:
            found = packets.name_json(event)
            if len(self._names) < 1024 and len(event) <= 256:
                self._names[event] = found
        return found

    # -- connecting ------------------------------------------------------------------

    async def connect(self, conn: Connection, auth: Any) -> SioSocket | None:
        """A client's CONNECT: guards, recovery, ``on_connection``; the socket, or
        ``None`` when refused (the client got a CONNECT_ERROR)."""
        session = conn.session
        server = self.server
        sock = SioSocket(self, conn, auth if auth.__class__ is dict else {})
        recovery = server.recovery
        restored = None
        if recovery is not None:
            restored = recovery.restore(self.name, sock.auth)
        refusal = await self._refusal(sock, session)
        if refusal is not None:
            session.push(packets.connect_error(self.prefix, refusal))
            return None
        if restored is not None:
            restored.data.update(sock.data)  # what the guards stored just now wins
            sock.id, sock.pid, sock.data = restored.sid, restored.pid, restored.data
            sock.recovered = True
        hello: dict[str, Any] = {"sid": sock.id}
        if recovery is not None:
            hello["pid"] = sock.pid
        self.members.add(sock)
        self.members.join(sock, sock.id)
        if restored is not None:
            for room in restored.rooms:
                self.members.join(sock, room)
            for pattern in restored.subscriptions:
                self.members.subscribe(sock, pattern)
        session.push(packets.connect_ok(self.prefix, hello))
        if restored is not None:
            for frame in restored.missed:
                session.push(frame)
        server.events.connected(server.owner, sock.id)
        try:
            await call_hooks(self.gateways, "on_connection", sock)
        except Exception:
            logger.exception("on_connection failed for %s; disconnecting it", sock.id)
            session.push(packets.disconnect(self.prefix))
            await self.leave(sock, "server namespace disconnect")
            return None
        return sock if sock.state is _CONNECTED else None

    async def _refusal(self, sock: SioSocket, session: EngineSession) -> str | None:
        """Why a client may not connect (the CONNECT_ERROR message), or ``None``."""
        server = self.server
        if server.draining:
            return "Server is shutting down"
        if server.guards:
            handshake = Handshake(
                path=server.path,
                headers=sock.headers,
                query=sock.query,
                client=sock.client,
                data=sock.data,
                auth=sock.auth,
                namespace=self.name,
            )
            if not await admit(handshake, server.guards):
                return "Forbidden resource"
        for guard, gateway in self.connect_guards:
            ctx = SioContext("connect", sock.auth, sock)
            handler = getattr(gateway, "on_connection", None) or _connect_placeholder
            ectx = ExecutionContext("event", TRANSPORT, "connect", handler, gateway, ctx, sock.auth)
            try:
                allowed = await _maybe_await(guard.can_activate(ectx))
            except Exception as exc:
                payload = error_payload(exc, where=f"{gateway.__qualname__} connect guard")
                return str(payload.get("message", "Forbidden resource"))
            if not allowed:
                return "Forbidden resource"
        return None

    async def leave(self, sock: SioSocket, reason: str) -> None:
        """``sock`` is gone from this namespace: streams end, rooms are left,
        ``on_disconnect`` is called (once)."""
        if sock.state is not _CONNECTED:
            return
        sock.state = SioState.DISCONNECTED
        recovery = self.server.recovery
        if recovery is not None and reason in ("transport close", "ping timeout"):
            recovery.keep(self.name, sock)
        sock.streams.cancel_all()
        self.dispatcher.feeds.end(sock)
        sock.fail_acks()
        self.members.remove(sock)
        sockets = sock.connection.sockets
        if sockets.get(self.name) is sock:
            del sockets[self.name]
        server = self.server
        server.events.disconnected(server.owner, sock.id)
        try:
            await call_hooks(self.gateways, "on_disconnect", sock)
        except Exception:
            logger.exception("on_disconnect failed for %s", sock.id)

    # -- events ----------------------------------------------------------------------

    async def on_event(self, sock: SioSocket, ack_id: int | None, args: list[Any]) -> None:
        """Handle one EVENT (``args``: ``[name, *arguments]``) and write what answers it."""
        name: str = args[0]
        count = len(args)
        payload = args[1] if count == 2 else (None if count == 1 else args[1:])
        server = self.server
        frame: str | None
        if server.draining:
            frame = self._error(sock, _SHUTTING_DOWN, ack_id)
        else:
            server.inflight.enter()
            try:
                inbound = Inbound(name, payload, None, args, sock)
                outcome = await self.dispatcher.dispatch(inbound)
                if isinstance(outcome, Reply):
                    frame = self._reply(sock, name, outcome, ack_id)
                else:
                    frame = await self._other(sock, outcome, name, payload, ack_id)
            finally:
                server.inflight.leave()
        if frame is not None:
            written = sock.session.write(frame)
            if written.__class__ is not bool:
                await written  # type: ignore[misc]

    def _reply(self, sock: SioSocket, name: str, reply: Reply, ack_id: int | None) -> str | None:
        data = reply.data.decode()
        if reply.event is not None:
            # A WsResponse is emitted as its own event; an ack still gets the data.
            sock.push(packets.event(self.prefix, self.name_json(reply.event), data))
        if ack_id is None:
            return None
        return packets.ack(self.prefix, ack_id, data)

    def _error(self, sock: SioSocket, payload: Mapping[str, Any], ack_id: int | None) -> str | None:
        """Emit the ``exception`` event (queued in order); returns the ack carrying the
        same error when the client asked for one."""
        body = encode(payload).decode()
        sock.push(packets.event(self.prefix, _EXCEPTION_NAME, body))
        return None if ack_id is None else packets.ack(self.prefix, ack_id, body)

    async def _other(
        self, sock: SioSocket, outcome: Outcome, name: str, payload: Any, ack_id: int | None
    ) -> str | None:
        if isinstance(outcome, Handled):
            if outcome.error is not None:
                return self._error(sock, outcome.error, ack_id)
            return None if ack_id is None else packets.ack(self.prefix, ack_id, "null")
        if isinstance(outcome, Stream):
            return await self._stream(sock, outcome, name, None, ack_id)
        if isinstance(outcome, Failure):
            return self._error(sock, outcome.payload, ack_id)
        assert outcome is NOT_FOUND
        if name in CONTROL_EVENTS:
            return await self._control(sock, name, payload, ack_id)
        return self._error(sock, NOT_FOUND.payload, ack_id)

    # -- streams ---------------------------------------------------------------------

    async def _stream(
        self,
        sock: SioSocket,
        outcome: Stream,
        name: str,
        stream_id: Any,
        ack_id: int | None,
    ) -> str | None:
        """Run a streamed result in a task of its own (it may run for long):

        - a ``stream`` request: items as ``stream`` events ``{"id", "data"}``, then
          ``{"id", "done": true}``;
        - a plain event with an ack: the ack gets the last item;
        - a plain event without one: each item is emitted as the event itself.
        """
        if stream_id is not None and stream_id in sock.streams:
            message = f"A stream with id {encode(stream_id).decode()} is already running"
            problem: Mapping[str, Any] | None = {"status": "error", "message": message}
        elif len(sock.streams) >= self.server.max_streams:
            problem = _TOO_MANY
        else:
            problem = None
        if problem is not None:
            await close(outcome.source)  # never iterated: its body does not run
            return self._error(sock, _with_id(problem, stream_id), ack_id)
        if stream_id is not None:
            runner: Awaitable[None] = drive(
                outcome.source, _StreamEvents(self, sock, stream_id), where=outcome.handler.name
            )
        elif ack_id is not None:
            runner = self._ack_last(sock, outcome, ack_id)
        else:
            respond = _EachAsEvent(self, sock, name)
            runner = drive(outcome.source, respond, where=outcome.handler.name)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(_run(runner))
        sock.streams.add(stream_id, task)
        if stream_id is not None and ack_id is not None:
            return packets.ack(self.prefix, ack_id, encode({"id": stream_id}).decode())
        return None

    async def _ack_last(self, sock: SioSocket, outcome: Stream, ack_id: int) -> None:
        result = await last_reply(outcome)
        if isinstance(result, Reply):
            await _send(sock, packets.ack(self.prefix, ack_id, result.data.decode()))
        else:
            frame = self._error(sock, result.payload, ack_id)
            assert frame is not None
            await _send(sock, frame)

    # -- the events the transport answers itself --------------------------------------

    async def _control(
        self, sock: SioSocket, event: str, data: Any, ack_id: int | None
    ) -> str | None:
        if event == STREAM_EVENT:
            return await self._open_stream(sock, data, ack_id)
        if event == CANCEL_EVENT:
            if data.__class__ is not str and data.__class__ is not int:
                return self._error(sock, _BAD_CANCEL, ack_id)
            found = sock.streams.cancel(data)
            if ack_id is None:
                return None
            return packets.ack(self.prefix, ack_id, "true" if found else "false")
        patterns = [data] if isinstance(data, str) else data
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            message = f'"{event}" takes a pattern or a list of patterns'
            return self._error(sock, {"status": "error", "message": message}, ack_id)
        members = self.members
        if event == UNSUBSCRIBE_EVENT:
            for p in patterns:
                members.unsubscribe(sock, p)
        else:
            server = self.server
            problem = await subscription_refusal(
                sock, patterns, limit=server.max_subscriptions, can_subscribe=server.can_subscribe
            )
            if problem is not None:
                return self._error(sock, problem, ack_id)
            if sock.state is not _CONNECTED:
                return None
            for p in patterns:
                members.subscribe(sock, p)
        if ack_id is None:
            return None
        return packets.ack(self.prefix, ack_id, encode(sorted(sock.subscriptions_)).decode())

    async def _open_stream(self, sock: SioSocket, data: Any, ack_id: int | None) -> str | None:
        if data.__class__ is not dict:
            return self._error(sock, _BAD_STREAM, ack_id)
        stream_id = data.get("id")
        event = data.get("event")
        if (
            stream_id.__class__ not in (str, int)
            or event.__class__ is not str
            or event in CONTROL_EVENTS
        ):
            return self._error(sock, _with_id(_BAD_STREAM, stream_id), ack_id)
        inbound = Inbound(event, data.get("data"), None, data, sock)
        found = self.dispatcher.route(event)
        if found.message is None:
            return self._error(sock, _with_id(NOT_FOUND.payload, stream_id), ack_id)
        outcome = await self.dispatcher.request(inbound, found)
        if isinstance(outcome, Stream):
            return await self._stream(sock, outcome, event, stream_id, ack_id)
        # A single reply is a stream of one item.
        respond = _StreamEvents(self, sock, stream_id)
        if isinstance(outcome, Reply):
            await respond.item(outcome.data)
            await respond.end(None)
        else:
            assert isinstance(outcome, Failure)
            await respond.error(outcome.payload)
        return None if ack_id is None else packets.ack(self.prefix, ack_id, "null")

    # -- pushing ---------------------------------------------------------------------

    def publish(self, pattern: str, payload: str) -> None:
        """Emit ``pattern`` with ``payload`` (JSON) to the sockets subscribed to it."""
        targets = self.members.subscribers(pattern)
        if not targets:
            return
        name = packets.name_json(pattern)
        recovery = self.server.recovery
        if recovery is None:
            frame = packets.event(self.prefix, name, payload)
        else:
            frame = recovery.add(
                self.name,
                lambda offset: packets.event(self.prefix, name, payload + "," + offset),
                pattern=pattern,
            )
        for sock in targets:
            sock.push(frame)

    def broadcast(self, event: str, payload: str, room: str | None, exclude: str | None) -> int:
        """Emit to every socket (or a room's) but the one with id ``exclude``."""
        name = packets.name_json(event)
        recovery = self.server.recovery
        if recovery is None:
            frame = packets.event(self.prefix, name, payload)
        else:
            sep = "," if payload else ""
            frame = recovery.add(
                self.name,
                lambda offset: packets.event(self.prefix, name, payload + sep + offset),
                room=room,
                exclude=exclude,
            )
        sent = 0
        for sock in self.members.targets(room):
            if sock.id != exclude and sock.push(frame):
                sent += 1
        return sent


def _with_id(payload: Mapping[str, Any], stream_id: Any) -> Mapping[str, Any]:
    return payload if stream_id is None else {**payload, "id": stream_id}


async def _run(runner: Awaitable[None]) -> None:
    await runner


async def _send(sock: SioSocket, frame: str) -> bool:
    written = sock.write(frame)
    if isinstance(written, bool):
        return written
    return await written


class _StreamEvents:
    """A ``stream`` request's replies: ``stream`` events carrying its id."""

    __slots__ = ("_id", "_json", "_ns", "_sock")

    def __init__(self, ns: Namespace, sock: SioSocket, stream_id: Any) -> None:
        self._ns = ns
        self._sock = sock
        self._id = stream_id
        self._json = encode(stream_id).decode()

    async def item(self, data: bytes) -> bool:
        body = '{"id":' + self._json + ',"data":' + data.decode() + "}"
        return await _send(self._sock, packets.event(self._ns.prefix, _STREAM_NAME, body))

    async def end(self, last: bytes | None) -> None:
        body = '{"id":' + self._json + ',"done":true}'
        await _send(self._sock, packets.event(self._ns.prefix, _STREAM_NAME, body))

    async def error(self, payload: dict[str, Any]) -> None:
        body = encode({**payload, "id": self._id}).decode()
        await _send(self._sock, packets.event(self._ns.prefix, _EXCEPTION_NAME, body))


class _EachAsEvent:
    """A plain event's streamed result without an ack: each item emitted as the event."""

    __slots__ = ("_name", "_ns", "_sock")

    def __init__(self, ns: Namespace, sock: SioSocket, name: str) -> None:
        self._ns = ns
        self._sock = sock
        self._name = ns.name_json(name)

    async def item(self, data: bytes) -> bool:
        return await _send(self._sock, packets.event(self._ns.prefix, self._name, data.decode()))

    async def end(self, last: bytes | None) -> None:
        return None

    async def error(self, payload: dict[str, Any]) -> None:
        self._ns._error(self._sock, payload, None)


def handler_filter(classes: frozenset[type], is_default: bool) -> Callable[[MessageHandler], bool]:
    """Which handlers a namespace serves: its gateways', and on the default namespace
    also those of plain controllers."""
    from framework.messaging._gateway import gateway_meta

    def allows(handler: MessageHandler) -> bool:
        if gateway_meta(handler.controller) is None:
            return is_default
        return handler.controller in classes

    return allows

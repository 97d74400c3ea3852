"""A Socket.IO client connected to one namespace (``SioSocket``), and what handlers can
ask for (``SioContext``)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from framework.messaging.codecs import encode
from framework.messaging.context import MessageContext
from framework.messaging.responses import WsResponse
from framework.transports._running import RunningStreams
from framework.transports.socketio import _packets as packets
from framework.transports.socketio._engine import EngineSession, new_id

if TYPE_CHECKING:
    from framework.transports.socketio._namespace import Connection, Namespace


class SioState(enum.Enum):
    """CONNECTED -> DISCONNECTED, never back."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


_CONNECTED = SioState.CONNECTED


def args_json(args: tuple[Any, ...]) -> str:
    """Event arguments as the JSON inside a packet's array (``null`` for NaN/Inf)."""
    return ",".join(encode(a).decode() for a in args)


class SioSocket:
    """One client in one namespace, as gateways and handlers see it (socket.io's ``Socket``).

    Attributes:
        id: the socket id (per namespace, as in socket.io); also the name of a room the
            socket is always in, so ``broadcast(..., room=socket.id)`` reaches it.
        namespace: the namespace name (``"/"``, ``"/chat"``...).
        headers: the handshake's HTTP headers (case-insensitive).
        query: the handshake's query parameters.
        auth: the ``auth`` payload the client connected with (``{}`` when none).
        client: ``(host, port)`` of the peer, when known.
        data: your own per-connection values (a guard may store the user here).
        recovered: the client reconnected within the recovery window and kept its id,
            rooms and data (connection state recovery).
        state: ``SioState``; emits to a disconnected socket are dropped.
    """

    __slots__ = (
        "_acks",
        "_next_ack",
        "_ns",
        "_pfx",
        "_session",
        "auth",
        "client",
        "connection",
        "data",
        "headers",
        "id",
        "namespace",
        "pid",
        "query",
        "recovered",
        "rooms_",
        "state",
        "streams",
        "subscriptions_",
    )

    def __init__(self, ns: Namespace, connection: Connection, auth: dict[str, Any]) -> None:
        session = connection.session
        self.connection = connection
        self.id = new_id()
        self.pid = new_id()
        self.namespace = ns.name
        self.headers: Mapping[str, str] = session.headers
        self.query: Mapping[str, str] = session.query
        self.client = session.client
        self.auth = auth
        self.data: dict[str, Any] = {}
        self.recovered = False
        self.state = _CONNECTED
        self.rooms_: set[str] = set()
        self.subscriptions_: set[str] = set()
        self._ns = ns
        self._pfx = packets.prefix(ns.name)
        self._session = session
        self.streams = RunningStreams()
        """The streamed replies running for this socket."""
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._next_ack = 0

    def __repr__(self) -> str:
        return f"SioSocket(id={self.id!r}, namespace={self.namespace!r}, state={self.state.value})"

    # -- what users call -------------------------------------------------------------

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this socket is in (its own id among them)."""
        return frozenset(self.rooms_)

    @property
    def subscriptions(self) -> frozenset[str]:
        """The patterns this socket subscribed to (the ``subscribe`` event)."""
        return frozenset(self.subscriptions_)

    @property
    def transport(self) -> str:
        """The Engine.IO transport carrying it now: ``"polling"`` or ``"websocket"``."""
        return self._session.transport

    def emit(self, event: str, *args: Any) -> bool:
        """Emit ``event`` with ``args`` to this client without waiting.

        Returns ``False`` if the socket is disconnected or its client reads too slowly
        (the connection is then dropped).
        """
        if self.state is not _CONNECTED:
            return False
        name = packets.name_json(event)
        payload = args_json(args)
        recovery = self._ns.server.recovery
        if recovery is None:
            frame = packets.event(self._pfx, name, payload)
        else:
            sep = "," if payload else ""
            frame = recovery.add(
                self.namespace,
                lambda offset: packets.event(self._pfx, name, payload + sep + offset),
                room=self.id,
            )
        return self._session.push(frame)

    async def call(self, event: str, *args: Any, timeout: float = 10.0) -> Any:
        """Emit ``event`` and wait for the client's acknowledgement (socket.io's
        ``socket.timeout(ms).emitWithAck``): its first argument, or a list when it
        sent several.

        Raises:
            TimeoutError: no ack within ``timeout`` seconds.
            ConnectionError: the socket disconnected first.
            RuntimeError: called from a handler of this same connection while it handles
                one event at a time (the ack could never be read): set the transport's
                ``max_concurrency`` above 1.
        """
        if self.connection.handling is asyncio.current_task():
            raise RuntimeError(
                "socket.call() from a handler of the same connection needs "
                "SocketIoTransport(max_concurrency=2 or more): the connection reads its "
                "next packet, the ack, only after the handler returns"
            )
        if self.state is not _CONNECTED:
            raise ConnectionError(f"Socket.IO socket {self.id} is disconnected")
        self._next_ack += 1
        ack_id = self._next_ack
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = answer
        frame = packets.event(self._pfx, packets.name_json(event), args_json(args), ack_id)
        try:
            if not self._session.push(frame):
                raise ConnectionError(f"Socket.IO socket {self.id} is disconnected")
            async with asyncio.timeout(timeout):
                return await answer
        finally:
            self._acks.pop(ack_id, None)

    def join(self, room: str) -> None:
        """Add this socket to ``room`` (``transport.broadcast(..., room=room)``)."""
        if self.state is _CONNECTED:
            self._ns.members.join(self, room)

    def leave(self, room: str) -> None:
        self._ns.members.leave(self, room)

    async def disconnect(self) -> None:
        """Disconnect this socket from its namespace (the client is told; other
        namespaces on the same connection stay)."""
        if self.state is _CONNECTED:
            self._session.push(packets.disconnect(self._pfx))
            await self._ns.leave(self, "server namespace disconnect")

    # -- transport internals ---------------------------------------------------------

    def write(self, frame: str) -> bool | Awaitable[bool]:
        """Write an encoded packet in order (a reply): see ``EngineSession.write``."""
        return self._session.write(frame)

    def push(self, frame: str) -> bool:
        return self._session.push(frame)

    @property
    def prefix(self) -> str:
        return self._pfx

    @property
    def session(self) -> EngineSession:
        return self._session

    def acked(self, ack_id: int | None, args: list[Any]) -> None:
        """The client acknowledged the server's event ``ack_id`` (unknown ids: ignored)."""
        answer = self._acks.get(ack_id) if ack_id is not None else None
        if answer is not None and not answer.done():
            answer.set_result(args[0] if len(args) == 1 else (args or None))

    def fail_acks(self) -> None:
        for answer in self._acks.values():
            if not answer.done():
                answer.set_exception(ConnectionError(f"Socket.IO socket {self.id} disconnected"))
        self._acks.clear()


class SioContext(MessageContext):
    """The ``MessageContext`` of a Socket.IO event; annotate a handler parameter with it.

    Attributes:
        socket: the ``SioSocket`` that emitted the event (``join``/``leave`` rooms,
            ``emit`` to it, read ``socket.data`` set by a guard).
        raw: the event's arguments as sent (``[name, *args]``).
    """

    __slots__ = ("socket",)

    def __init__(self, pattern: str, raw: Any, socket: SioSocket) -> None:
        super().__init__(pattern, "socketio", None, raw)
        self.socket = socket


__all__ = ["SioContext", "SioSocket", "SioState", "WsResponse"]

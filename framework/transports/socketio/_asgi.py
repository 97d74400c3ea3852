"""The Engine.IO endpoint on the app's HTTP server: long-polling (``GET``/``POST``) and
WebSocket on one path (default ``/socket.io/``).

Requests (query ``EIO=4&transport=polling|websocket[&sid=...]``; under
``Application.server`` the WebSocket ones are served on picows, ``_picows.py``, through
the same ``admit_websocket`` and ``run_websocket``):

- ``GET`` without ``sid``: a new polling session; the body is the OPEN packet.
- ``GET`` with ``sid``: waits for the session's packets (a ping comes every
  ``ping_interval``, so it never waits longer).
- ``POST`` with ``sid``: the client's packets; answered ``ok``.
- WebSocket without ``sid``: a new session on WebSocket; with ``sid``: the upgrade of
  a polling session (``2probe`` / ``3probe``, then ``5``).

Errors are HTTP 400 (403 for a refused origin) with Engine.IO's JSON body
``{"code": n, "message": ...}``; a packet that breaks the protocol closes its session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import pydantic_core
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from framework.http._abort import abort_connection
from framework.transports.socketio._engine import (
    POLLING,
    WEBSOCKET,
    Engine,
    EngineSession,
    EngineState,
    Packet,
    Pipe,
)
from framework.transports.socketio._packets import (
    EIO_OPEN,
    EIO_PING,
    EIO_PONG,
    EIO_UPGRADE,
    PacketError,
    decode_polling_body,
    encode_polling_body,
)
from framework.transports.websocket._handshake import origin_allowed
from framework.transports.websocket._session import FAIR_SHARE

logger = logging.getLogger("framework.socketio")

UNKNOWN_TRANSPORT = (0, "Transport unknown")
UNKNOWN_SID = (1, "Session ID unknown")
BAD_METHOD = (2, "Bad handshake method")
BAD_REQUEST = (3, "Bad request")
FORBIDDEN = (4, "Forbidden")
BAD_VERSION = (5, "Unsupported protocol version")

Client = tuple[str, int] | None

Opened = Callable[[EngineSession], None]
"""Told of every new session before its first packet (the Socket.IO layer hooks in)."""


class Gate:
    """What the endpoint asks before serving: open for business, origins allowed."""

    def __init__(self, allowed_origins: frozenset[str] | None) -> None:
        self.allowed_origins = allowed_origins
        self.accepting = False


class EngineEndpoint:
    """An ASGI app serving one Engine.IO path."""

    def __init__(self, engine: Engine, gate: Gate, opened: Opened) -> None:
        self.engine = engine
        self.gate = gate
        self.opened = opened

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, headers, query)
            return
        problem = self._check(headers, query, False)
        if problem is not None:
            status = 403 if problem is FORBIDDEN else 400
            await _respond(send, status, _error_body(problem), headers, self.gate)
            return
        method = scope["method"]
        if method == "OPTIONS":
            await _respond(send, 204, b"", headers, self.gate)
            return
        sid = query.get("sid")
        if sid is None:
            if method != "GET":
                await _respond(send, 400, _error_body(BAD_METHOD), headers, self.gate)
                return
            refused = self.engine.refusal(scope.get("client"))
            if refused is not None:
                logger.info("Socket.IO refused a session: %s", refused)
                await _respond(send, 503, _error_body((3, refused)), headers, self.gate)
                return
            session = self._open(POLLING, headers, query, scope.get("client"))
            body = EIO_OPEN + pydantic_core.to_json(self.engine.open_payload(session)).decode()
            await _respond(send, 200, body.encode(), headers, self.gate)
            return
        found = self.engine.sessions.get(sid)
        if found is None or found.transport != POLLING:
            await _respond(send, 400, _error_body(UNKNOWN_SID), headers, self.gate)
            return
        session = found
        if method == "GET":
            await self._get(session, send, headers)
        elif method == "POST":
            await self._post(session, receive, send, headers)
        else:
            await _respond(send, 400, _error_body(BAD_METHOD), headers, self.gate)

    def _check(
        self, headers: Headers, query: dict[str, str], websocket: bool
    ) -> tuple[int, str] | None:
        if not self.gate.accepting and "sid" not in query:
            return BAD_REQUEST  # no new sessions while starting or draining
        if query.get("EIO") != "4":
            return BAD_VERSION
        transport = query.get("transport")
        if transport not in (POLLING, WEBSOCKET) or (transport == WEBSOCKET) != websocket:
            return UNKNOWN_TRANSPORT
        if not origin_allowed(headers.get("origin"), self.gate.allowed_origins):
            logger.info("Socket.IO refused: origin %r is not allowed", headers.get("origin"))
            return FORBIDDEN
        return None

    def _open(
        self, transport: str, headers: Headers, query: dict[str, str], client: Client
    ) -> EngineSession:
        session = self.engine.new_session(transport, headers, query, client)
        self.opened(session)
        session.start_heartbeat()
        return session

    # -- long-polling ----------------------------------------------------------------

    async def _get(self, session: EngineSession, send: Send, headers: Headers) -> None:
        try:
            packets = await session.take()
        except PacketError:
            session.close("overlapping polls")
            await _respond(send, 400, _error_body(BAD_REQUEST), headers, self.gate)
            return
        await _respond(send, 200, encode_polling_body(packets), headers, self.gate)

    async def _post(
        self, session: EngineSession, receive: Receive, send: Send, headers: Headers
    ) -> None:
        limit = self.engine.max_payload
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                logger.info("Closing Socket.IO session %s: body over %d bytes", session.sid, limit)
                session.close("payload too large")
                await _respond(send, 413, _error_body(BAD_REQUEST), headers, self.gate)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        try:
            for packet in decode_polling_body(b"".join(chunks)):
                if isinstance(packet, bytes):
                    await session.receive_binary(packet)
                else:
                    await session.receive(packet)
        except PacketError as exc:
            logger.info("Closing Socket.IO session %s: %s", session.sid, exc)
            session.close("parse error")
            await _respond(send, 400, _error_body(BAD_REQUEST), headers, self.gate)
            return
        await _respond(send, 200, b"ok", headers, self.gate)

    # -- WebSocket ---------------------------------------------------------------------

    def admit_websocket(
        self, headers: Headers, query: dict[str, str], client: Client
    ) -> tuple[tuple[int, str] | None, EngineSession | None]:
        """``(problem, session)`` for a WebSocket handshake: the problem refusing it (the
        server answers 403), else the polling session it upgrades (``None``: a new
        session starts on WebSocket)."""
        problem = self._check(headers, query, True)
        if problem is not None:
            return problem, None
        sid = query.get("sid")
        if sid is not None:
            upgrade = self.engine.sessions.get(sid)
            if upgrade is None or upgrade.transport != POLLING or upgrade.upgrading:
                return UNKNOWN_SID, None
            return None, upgrade
        refused = self.engine.refusal(client)
        if refused is not None:
            logger.info("Socket.IO refused a session: %s", refused)
            return (3, refused), None
        return None, None

    async def _websocket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Headers,
        query: dict[str, str],
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        problem, upgrade = self.admit_websocket(headers, query, scope.get("client"))
        if problem is not None:
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})

        async def packet() -> Any:
            message = await receive()
            if message["type"] != "websocket.receive":
                return None
            text = message.get("text")
            return text if text is not None else message.get("bytes") or b""

        await self.run_websocket(
            AsgiPipe(send), packet, headers, query, scope.get("client"), upgrade
        )

    async def run_websocket(
        self,
        pipe: Pipe,
        receive: Callable[[], Awaitable[Any]],
        headers: Headers,
        query: dict[str, str],
        client: Client,
        upgrade: EngineSession | None,
    ) -> None:
        """Serve an accepted Engine.IO WebSocket until it closes: a new session, or the
        upgrade of the polling session ``upgrade`` (``admit_websocket`` said so).
        ``receive`` returns each packet (``str`` or ``bytes``), ``None`` once the client
        has gone; whatever reads the frames underneath, this is the one read loop."""
        task = asyncio.current_task()
        limit = self.engine.max_payload
        if upgrade is None:
            session = self._open(WEBSOCKET, headers, query, client)
            session.use_websocket(pipe, task)
            open_packet = pydantic_core.to_json(self.engine.open_payload(session)).decode()
            session.push(EIO_OPEN + open_packet)
        elif upgrade.state is not EngineState.OPEN or upgrade.upgrading:
            return  # closed, or another upgrade began, since the handshake was admitted
        else:
            session = upgrade
            session.upgrading = True
        turn = 0
        try:
            while True:
                data = await receive()
                if data is None:
                    break
                turn += 1
                if turn == FAIR_SHARE:
                    # ``receive`` returns at once while packets are buffered: let the
                    # other connections run (see the WebSocket transport's ``Session``).
                    turn = 0
                    await asyncio.sleep(0)
                if len(data) > limit:
                    logger.info("Closing Socket.IO session %s: packet too large", session.sid)
                    session.close("payload too large", abort=True)
                    break
                if session.upgrading:
                    if not await self._probe(session, data, pipe, task):
                        break
                    continue
                if session.state is not EngineState.OPEN:
                    continue
                if data.__class__ is str:
                    await session.receive(data)
                else:
                    await session.receive_binary(data)
        except PacketError as exc:
            logger.info("Closing Socket.IO session %s: %s", session.sid, exc)
            session.close("parse error")
        except asyncio.CancelledError:
            # ``EngineSession.close(abort=True)`` cancels this task to drop the client:
            # return normally so the server closes the TCP connection.
            if task is None or session.ws_task is not task or session.state is EngineState.OPEN:
                raise
            task.uncancel()
        finally:
            if session.ws_task is task or upgrade is None:
                session.close("transport close")
                await session.closed()

    async def _probe(
        self, session: EngineSession, data: Any, pipe: Pipe, task: asyncio.Task[Any] | None
    ) -> bool:
        """One packet of an upgrade: ``2probe`` -> ``3probe``; ``5`` switches over."""
        if data == EIO_PING + "probe":
            await pipe.send_wire(EIO_PONG + "probe")
            session.release_poll()
            return True
        if data == EIO_UPGRADE:
            session.use_websocket(pipe, task)
            return True
        logger.info("Socket.IO upgrade of %s failed: unexpected %r", session.sid, data[:20])
        session.upgrading = False
        return False


class AsgiPipe:
    """An Engine.IO WebSocket over ASGI messages (``Pipe``). ASGI cannot drop a TCP
    connection: ``abort`` aborts the server's transport where it can reach it."""

    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    def try_write(self, packet: Packet) -> bool:
        return False  # ASGI has no synchronous send

    async def send_wire(self, packet: Packet) -> bool:
        message = (
            {"type": "websocket.send", "text": packet}
            if packet.__class__ is str
            else {"type": "websocket.send", "bytes": packet}
        )
        try:
            await self._send(message)
        except (OSError, RuntimeError):
            return False  # the client went away, or the connection is closing
        return True

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except (OSError, RuntimeError):
            self.abort()

    def abort(self) -> None:
        abort_connection(self._send)


def _error_body(problem: tuple[int, str]) -> bytes:
    code, message = problem
    return pydantic_core.to_json({"code": code, "message": message})


async def _respond(send: Send, status: int, body: bytes, headers: Headers, gate: Gate) -> None:
    out: list[tuple[bytes, bytes]] = [
        (b"content-type", b"text/plain; charset=UTF-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    origin = headers.get("origin")
    if origin is not None and origin_allowed(origin, gate.allowed_origins):
        # Browsers poll cross-origin only when the server says so (socket.io's ``cors``).
        out.append((b"access-control-allow-origin", origin.encode("latin-1")))
        out.append((b"access-control-allow-credentials", b"true"))
        out.append((b"access-control-allow-methods", b"GET, POST, OPTIONS"))
        out.append((b"access-control-allow-headers", b"content-type"))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})

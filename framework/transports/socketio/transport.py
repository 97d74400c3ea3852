"""``SocketIoTransport``: handlers and gateways for socket.io clients (protocol v5 over
Engine.IO v4), on the app's HTTP port.

Layers, bottom up: ``_asgi.py`` (HTTP long-polling and WebSocket on one path),
``_engine.py`` (Engine.IO sessions: heartbeats, the upgrade, one bounded outbox each),
``_namespace.py`` (Socket.IO: namespaces, connect guards, events through the app's
dispatcher), ``_recovery.py`` (connection state recovery). docs/transports/socketio.md
has the mapping from events to handlers, the errors and the limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic_core
from starlette.requests import Request
from starlette.responses import Response

from framework.exceptions import ConfigurationError
from framework.messaging._decorators import enhancers_of
from framework.messaging._gateway import gateway_meta
from framework.messaging.codecs import encode
from framework.messaging.dispatch import Dispatcher, Inbound
from framework.transports.base import Transport
from framework.transports.socketio._asgi import EngineEndpoint, Gate
from framework.transports.socketio._engine import Engine
from framework.transports.socketio._namespace import (
    CONTROL_EVENTS,
    TRANSPORT,
    Namespace,
    Server,
    SubscriptionGuard,
    handler_filter,
)
from framework.transports.socketio._recovery import Recovery
from framework.transports.socketio.socket import SioContext, SioSocket
from framework.transports.websocket._endpoint import call_hooks, gateway_instances
from framework.transports.websocket._handshake import Guard, install_log_redaction

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

logger = logging.getLogger("framework.socketio")


_BROADCAST = "socketio.broadcast"
"""The peer channel carrying ``emit`` to every instance."""

_BUNDLE = Path(__file__).parent / "static" / "socket.io.min.js"


async def _client_bundle(request: Request) -> Response:
    return Response(
        _BUNDLE.read_bytes(),
        media_type="application/javascript",
        headers={"cache-control": "public, max-age=3600"},
    )


def _socket(inbound: Inbound) -> Any:
    return inbound.source


def _context(inbound: Inbound) -> SioContext:
    sock: SioSocket = inbound.source
    return SioContext(inbound.pattern, inbound.raw, sock)


class SocketIoTransport(Transport):
    """Serve ``@subscribe_message`` / ``@message_pattern`` / ``@event_pattern`` handlers
    and gateways to socket.io clients.

    Args:
        path: the Engine.IO path (socket.io's ``path`` option; default ``/socket.io/``).
        ping_interval: seconds between the server's pings (default 25, socket.io's).
        ping_timeout: seconds a client has to answer a ping before it is dropped
            (default 20).
        max_payload: largest inbound packet, or long-polling body, in bytes (socket.io's
            ``maxHttpBufferSize``; default 1 MB). A larger one closes that connection.
        send_queue: packets a connection may have waiting (default 1024); when full,
            the client is too slow and is dropped.
        max_streams: streamed replies running at once per socket (default 32).
        max_subscriptions: patterns one socket may subscribe to (default 100).
        max_connections: open connections (Engine.IO sessions) on this transport
            (default 10,000); a new one over it gets HTTP 503 ``{"code": 3, "message":
            "Too many connections"}`` (a WebSocket handshake: 403). ``None``: no limit.
        max_connections_per_client: open connections from one client IP address
            (default ``None``: behind a reverse proxy every client shares its address).
        max_packet_rate: inbound packets per second one connection may send, in bursts
            of up to one second's worth (default ``None``: no limit); a connection that
            sends faster is closed.
        max_concurrency: events handled at once per connection (default 1: in order,
            in the connection's own task); more runs each event in a task, so a slow
            handler does not hold up the connection's other events.
        allowed_origins: ``Origin`` values browsers may connect from (the WebSocket
            handshake and cross-origin long-polling); ``None`` admits any.
        guards: connection guards (``can_connect(handshake)`` or a callable, sync or
            async) run at each namespace CONNECT, with ``handshake.auth`` the client's
            ``auth`` payload; a refusal is a ``connect_error`` "Forbidden resource".
        can_subscribe: ``can_subscribe(socket, pattern)``; ``False`` refuses a
            subscription with "Forbidden resource".
        recovery_window: seconds a client that lost its connection may reconnect and
            get back its id, rooms and the packets it missed (socket.io's connection
            state recovery, ``maxDisconnectionDuration``); ``None`` (default) disables it.
        close_timeout: seconds a close may take before the connection is dropped.
        shutdown_timeout: seconds graceful shutdown waits for handlers in flight.
        serve_client: serve socket.io-client's browser bundle at ``<path>socket.io.js``
            and ``<path>socket.io.min.js``, as socket.io's ``serveClient`` does (default
            on), so pages load it from the app and never from a CDN.
    """

    name = TRANSPORT

    def __init__(
        self,
        path: str = "/socket.io/",
        *,
        ping_interval: float | None = 25.0,
        ping_timeout: float | None = 20.0,
        max_payload: int = 1_000_000,
        send_queue: int = 1024,
        max_streams: int = 32,
        max_subscriptions: int = 100,
        max_concurrency: int = 1,
        max_connections: int | None = 10_000,
        max_connections_per_client: int | None = None,
        max_packet_rate: float | None = None,
        allowed_origins: Sequence[str] | None = None,
        guards: Sequence[Guard] = (),
        can_subscribe: SubscriptionGuard | None = None,
        recovery_window: float | None = None,
        close_timeout: float = 10.0,
        shutdown_timeout: float = 10.0,
        serve_client: bool = True,
    ) -> None:
        if not path.startswith("/"):
            raise ConfigurationError(f"Socket.IO path {path!r} must start with '/'")
        if not path.endswith("/"):
            path += "/"  # socket.io-client asks for "<path>/?EIO=4..."
        for label, value in (
            ("max_payload", max_payload),
            ("send_queue", send_queue),
            ("max_streams", max_streams),
            ("max_subscriptions", max_subscriptions),
            ("max_concurrency", max_concurrency),
            ("max_connections", max_connections or 1),
            ("max_connections_per_client", max_connections_per_client or 1),
            ("max_packet_rate", max_packet_rate or 1),
        ):
            if value < 1:
                raise ConfigurationError(f"SocketIoTransport {label} must be at least 1")
        self.path = path
        self.serve_client = serve_client
        self.shutdown_timeout = shutdown_timeout
        self.close_timeout = close_timeout
        self.engine = Engine(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_payload=max_payload,
            send_queue=send_queue,
            close_timeout=close_timeout,
            max_connections=max_connections,
            max_connections_per_client=max_connections_per_client,
            max_packet_rate=max_packet_rate,
        )
        self.gate = Gate(frozenset(allowed_origins) if allowed_origins is not None else None)
        self.server = Server(
            max_streams=max_streams,
            max_subscriptions=max_subscriptions,
            max_concurrency=max_concurrency,
            guards=guards,
            can_subscribe=can_subscribe,
            path=path,
        )
        if recovery_window is not None:
            self.server.recovery = Recovery(recovery_window)
        self.endpoint = EngineEndpoint(self.engine, self.gate, self.server.attach)

    # -- setup -----------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        from starlette.routing import Route, WebSocketRoute

        endpoint = self.endpoint
        routes: list[BaseRoute] = [
            Route(self.path, endpoint, methods=["GET", "POST", "OPTIONS"]),
            WebSocketRoute(self.path, endpoint),
        ]
        if self.serve_client:
            for name in ("socket.io.js", "socket.io.min.js"):
                routes.append(Route(self.path + name, _client_bundle, methods=["GET"]))
        return routes

    def server_options(self) -> dict[str, Any]:
        """uvicorn settings: no permessage-deflate (socket.io's default too: it costs
        CPU and ~64 KiB of memory per connection). ``max_payload`` is checked per packet
        here, so uvicorn's own frame limit is left to the WebSocket transport."""
        return {"ws_per_message_deflate": False}

    def upgrade_routes(self) -> list[Any]:
        """With picows installed, the Engine.IO WebSocket on the app's port is served on
        picows (``Application.server``); long-polling stays on the ASGI route."""
        from framework.transports.websocket._standalone import HAVE_PICOWS

        if not HAVE_PICOWS:
            return []
        from framework.transports.socketio._picows import EngineRoute

        return [EngineRoute(self.endpoint, self.path)]

    async def _build_namespaces(self) -> dict[str, Namespace]:
        router = self.host.router
        reserved = sorted(CONTROL_EVENTS & router.patterns(self.name))
        if reserved:
            raise ConfigurationError(
                f"Handlers declare {reserved} on the Socket.IO transport, but the transport "
                "answers those events itself; rename the patterns"
            )
        gateways: dict[type, Any] = dict(gateway_instances(self.host))
        for handler in router.handlers:
            if handler.serves(self.name) and gateway_meta(handler.controller) is not None:
                gateways.setdefault(handler.controller, None)
        by_name: dict[str, list[tuple[type, Any]]] = {"/": []}
        for cls, instance in gateways.items():
            meta = gateway_meta(cls)
            assert meta is not None
            by_name.setdefault(meta.namespace or "/", []).append((cls, instance))
        namespaces: dict[str, Namespace] = {}
        for name, members in by_name.items():
            classes = frozenset(cls for cls, _ in members)
            dispatcher = Dispatcher(
                router,
                self.name,
                context=_context,
                allows=handler_filter(classes, name == "/"),
                stream_key=_socket,  # an inbound stream per socket
            )
            guards = [(g, cls) for cls, _ in members for g in await self._connect_guards(cls)]
            instances = [i for _, i in members if i is not None]
            namespaces[name] = Namespace(name, self.server, dispatcher, instances, guards)
        return namespaces

    async def _connect_guards(self, cls: type) -> list[Any]:
        """The gateway's own ``use_guards``, built as its handlers' are (NestJS runs
        none at connect: nestjs/nest#882)."""
        declared = enhancers_of(cls, "guards")
        if not declared:
            return []
        container = self.host.container  # type: ignore[attr-defined]
        node = next(
            (rec.module for rec in container.controllers() if rec.provider.use_class is cls),
            None,
        )
        out = []
        for guard in declared:
            if isinstance(guard, type):
                if node is None:
                    raise ConfigurationError(f"Gateway {cls.__qualname__} is not in any module")
                guard = await container.create_in(node, guard)
            out.append(guard)
        return out

    def asyncapi_server(self, *, http_host: str, secure: bool) -> dict[str, Any]:
        """This transport's AsyncAPI Server Object (``framework asyncapi``)."""
        return {
            "host": http_host,
            "pathname": self.path,
            "protocol": "socketio",
            "description": (
                "Socket.IO v5 over Engine.IO v4 (WebSocket, or long-polling then the "
                "upgrade). An event is a pattern; its ack is the reply. Errors are "
                '`exception` events `{"status": "error", "message": ...}` and answer the '
                "ack too. The transport answers `subscribe`, `unsubscribe`, `stream` and "
                "`cancel` itself. Gateways may serve namespaces of their own."
            ),
        }

    async def start(self) -> None:
        server = self.server
        server.namespaces = await self._build_namespaces()
        server.draining = False
        server.owner, server.events = self, self.host.events
        events = self.host.events
        self.engine.on_drop = lambda session, why: events.dropped(self, session.sid, why)
        for ns in server.namespaces.values():
            await call_hooks(ns.gateways, "after_init", self)
        install_log_redaction()
        self.gate.accepting = True

    @property
    def ready(self) -> bool:
        return self.gate.accepting

    async def drain(self) -> None:
        """Stop accepting, let handlers in flight finish (up to ``shutdown_timeout``),
        then close every connection (clients reconnect to another instance)."""
        self.gate.accepting = False
        server = self.server
        server.draining = True
        await server.inflight.settle(self.shutdown_timeout, "Socket.IO")
        sessions = list(self.engine.sessions.values())
        for session in sessions:
            session.close("server shutting down")
        tasks = [s.ws_task for s in sessions if s.ws_task is not None and not s.ws_task.done()]
        if tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_timeout + 1):
                    await asyncio.wait(tasks)
        for ns in server.namespaces.values():
            await ns.dispatcher.feeds.close(self.shutdown_timeout)

    async def stop(self) -> None:
        await self.drain()

    # -- pushing ---------------------------------------------------------------------

    def namespace(self, name: str = "/") -> Namespace:
        try:
            return self.server.namespaces[name]
        except KeyError:
            raise ConfigurationError(f"No Socket.IO namespace {name!r} is served") from None

    async def publish(self, pattern: str, payload: bytes, event_id: str | None) -> None:
        """Emit ``pattern`` with ``payload`` to every socket subscribed to a matching
        pattern, in every namespace: encoded once per namespace."""
        data = payload.decode()
        for ns in self.server.namespaces.values():
            ns.publish(pattern, data)

    def broadcast(
        self,
        event: str,
        *args: Any,
        room: str | None = None,
        exclude: SioSocket | None = None,
        namespace: str = "/",
    ) -> int:
        """Emit ``event`` with ``args`` to every socket of ``namespace`` (or of a room in
        it), without waiting; returns how many sockets it was queued for."""
        payload = ",".join(encode(a).decode() for a in args)
        skip = None if exclude is None else exclude.id
        return self.namespace(namespace).broadcast(event, payload, room, skip)

    async def emit(
        self,
        event: str,
        *args: Any,
        room: str | None = None,
        exclude: SioSocket | None = None,
        namespace: str = "/",
    ) -> None:
        """``broadcast`` on every instance of the app: through the publish relay when
        the app has one (socket.io's ``io.to(room).emit`` with an adapter), else here."""
        self.namespace(namespace)  # fail now on a namespace nobody serves
        envelope = {
            "namespace": namespace,
            "room": room,
            "event": event,
            "args": ",".join(encode(a).decode() for a in args),
            "exclude": None if exclude is None else exclude.id,
        }
        await self.host.to_peers(_BROADCAST, encode(envelope))

    async def on_peer_message(self, channel: str, payload: bytes) -> None:
        if channel != _BROADCAST:
            return
        message = pydantic_core.from_json(payload)
        ns = self.server.namespaces.get(message.get("namespace"))
        if ns is not None:
            ns.broadcast(message["event"], message["args"], message["room"], message["exclude"])

    def sockets(self, namespace: str = "/") -> dict[str, SioSocket]:
        """Connected sockets of a namespace by id (a copy)."""
        return dict(self.namespace(namespace).members.sockets)

    def room(self, name: str, namespace: str = "/") -> frozenset[SioSocket]:
        """The sockets in a room of a namespace."""
        return frozenset(self.namespace(namespace).members.rooms.get(name, ()))

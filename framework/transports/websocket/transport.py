"""``WebSocketTransport``: message handlers and gateways over WebSocket JSON frames.

The wire format is in ``_frames.py`` and docs/transports/websocket.md. By default the
transport serves on the app's HTTP port (starlette routes under uvicorn); with ``port=``
it runs its own ``websockets`` server instead, which skips the ASGI layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from framework.exceptions import ConfigurationError
from framework.messaging.codecs import encode
from framework.transports.base import Transport
from framework.transports.websocket._endpoint import Endpoint, build_endpoints, call_hooks
from framework.transports.websocket._frames import CONTROL_EVENTS
from framework.transports.websocket._handshake import Guard, install_log_redaction
from framework.transports.websocket._session import (
    Authenticate,
    Connections,
    SubscriptionGuard,
)
from framework.transports.websocket._socket import CLOSE_GOING_AWAY, Hub, WsSocket

if TYPE_CHECKING:
    from starlette.routing import BaseRoute
    from websockets.asyncio.server import Server

logger = logging.getLogger("framework.websocket")


def _same(frame: bytes) -> bytes:
    return frame


class WebSocketTransport(Transport):
    """Serve ``@message_pattern``/``@event_pattern`` handlers and gateways over WebSocket.

    Args:
        path: URL path of the default endpoint (gateways may add their own paths).
        host: interface of the standalone server (only with ``port``).
        port: serve on a separate ``websockets`` server on this port (0 picks a free
            one) instead of the app's HTTP port; ``None`` (default) mounts on the app.
        max_message_size: largest inbound frame in bytes (default 1 MiB); a larger one
            closes the connection with 1009 before any handler runs.
        send_queue: frames a socket may have waiting to be pushed (default 1024); when
            full, the client is too slow and is closed with 1008.
        max_streams: streamed replies running at once per connection (default 32).
        max_subscriptions: patterns one connection may subscribe to (default 100).
        max_concurrency: frames handled at once per connection (default 1: in order,
            in the connection's own task, the fastest); more runs each frame in a task.
        max_connections: open connections on this transport (default 10,000); one
            more is accepted, then closed with 1013 "too many connections".
            ``None``: no limit.
        max_connections_per_client: open connections from one client IP address
            (default ``None``: no limit, as behind a reverse proxy every client shares
            its address); one more is closed with 1013.
        max_frame_rate: inbound frames per second one connection may send, in bursts of
            up to one second's worth (default ``None``: no limit); a connection that
            sends faster is closed with 1008 "rate limit exceeded".
        ping_interval: seconds between keepalive pings (default 20; ``None`` disables).
        ping_timeout: seconds to wait for a pong before dropping the connection
            (default 20; ``None`` waits forever).
        close_timeout: seconds a close handshake may take before the TCP connection is
            dropped (default 10).
        shutdown_timeout: seconds graceful shutdown waits for handlers in flight before
            closing sockets with 1001 (default 10).
        allowed_origins: ``Origin`` values browsers may connect from; others get HTTP
            403. ``None`` (default) admits any origin. Clients that send no ``Origin``
            (not browsers) are always admitted.
        guards: connection guards run before accepting (``can_connect(handshake)`` or a
            callable; sync or async); a refusal is HTTP 403.
        authenticate: ``authenticate(socket, data)``, sync or async: when set, the first
            frame must be ``{"event": "auth", "data": ...}``; a false answer or no frame
            within ``auth_timeout`` closes the connection with 1008.
        auth_timeout: seconds a client has to authenticate (default 10).
        can_subscribe: ``can_subscribe(socket, pattern)``, sync or async; a false answer
            refuses a subscription with "Forbidden resource". ``None`` allows all.
        compression: negotiate permessage-deflate (default off: it costs CPU and about
            64 KiB of memory per connection).
        redact_query_in_logs: strip query strings (where browsers put tokens) from
            uvicorn's WebSocket log lines (default on).
    """

    name = "ws"

    def __init__(
        self,
        path: str = "/ws",
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        max_message_size: int = 1024 * 1024,
        send_queue: int = 1024,
        max_streams: int = 32,
        max_subscriptions: int = 100,
        max_concurrency: int = 1,
        max_connections: int | None = 10_000,
        max_connections_per_client: int | None = None,
        max_frame_rate: float | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 10.0,
        shutdown_timeout: float = 10.0,
        allowed_origins: Sequence[str] | None = None,
        guards: Sequence[Guard] = (),
        authenticate: Authenticate | None = None,
        auth_timeout: float = 10.0,
        can_subscribe: SubscriptionGuard | None = None,
        compression: bool = False,
        redact_query_in_logs: bool = True,
    ) -> None:
        if not path.startswith("/"):
            raise ConfigurationError(f"WebSocket path {path!r} must start with '/'")
        for label, value in (
            ("max_message_size", max_message_size),
            ("send_queue", send_queue),
            ("max_streams", max_streams),
            ("max_subscriptions", max_subscriptions),
            ("max_concurrency", max_concurrency),
        ):
            if value < 1:
                raise ConfigurationError(f"WebSocketTransport {label} must be at least 1")
        for label, limit in (
            ("max_connections", max_connections),
            ("max_connections_per_client", max_connections_per_client),
            ("max_frame_rate", max_frame_rate),
        ):
            if limit is not None and limit <= 0:
                raise ConfigurationError(f"WebSocketTransport {label} must be positive or None")
        self.path = path
        self.host_name = host
        self.port = port
        self.max_message_size = max_message_size
        self.max_streams = max_streams
        self.max_subscriptions = max_subscriptions
        self.max_concurrency = max_concurrency
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.shutdown_timeout = shutdown_timeout
        self.allowed_origins = frozenset(allowed_origins) if allowed_origins is not None else None
        self.guards = tuple(guards)
        self.authenticate = authenticate
        self.auth_timeout = auth_timeout
        self.can_subscribe = can_subscribe
        self.compression = compression
        self.redact_query_in_logs = redact_query_in_logs
        self.hub = Hub(send_queue=send_queue, close_timeout=close_timeout)
        self.connections = Connections(
            self.hub,
            max_message_size=max_message_size,
            max_streams=max_streams,
            max_subscriptions=max_subscriptions,
            max_concurrency=max_concurrency,
            allowed_origins=self.allowed_origins,
            guards=self.guards,
            authenticate=authenticate,
            auth_timeout=auth_timeout,
            can_subscribe=can_subscribe,
            max_connections=max_connections,
            max_connections_per_client=max_connections_per_client,
            max_frame_rate=max_frame_rate,
        )
        self._server: Server | asyncio.Server | None = None
        self._wire: Callable[[bytes], Any] = bytes.decode if port is None else _same

    # -- setup -----------------------------------------------------------------------

    def _prepare(self) -> None:
        router = self.host.router
        reserved = sorted(CONTROL_EVENTS & router.patterns(self.name))
        if reserved:
            raise ConfigurationError(
                f"Handlers declare {reserved} on the WebSocket transport, but the transport "
                "answers those events itself; rename the patterns"
            )
        self.connections.endpoints = build_endpoints(self.path, router, self.host)

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        """The served paths and what serves them."""
        return self.connections.endpoints

    def routes(self) -> list[BaseRoute]:
        if self.port is not None:
            return []
        from starlette.routing import WebSocketRoute

        from framework.transports.websocket._asgi import AsgiEndpoint

        self._prepare()
        endpoint = AsgiEndpoint(self.connections)
        return [WebSocketRoute(path, endpoint) for path in self.endpoints]

    def server_options(self) -> dict[str, Any]:
        """uvicorn settings for the app's HTTP server: the frame size limit, keepalive,
        compression and flow control apply there when the transport shares the HTTP
        port (and to other WebSocket routes when picows serves this transport's)."""
        if self.port is not None:
            return {}
        from framework.transports.websocket._flow import FlowControlledProtocol

        return {
            "ws": FlowControlledProtocol,  # stops reading a client that does not read
            "ws_max_size": self.max_message_size,
            "ws_ping_interval": self.ping_interval,
            "ws_ping_timeout": self.ping_timeout,
            "ws_per_message_deflate": self.compression,
        }

    def upgrade_routes(self) -> list[Any]:
        """With picows installed and compression off, this transport's paths on the
        app's port are served on picows (``Application.server``)."""
        from framework.transports.websocket._standalone import HAVE_PICOWS

        if self.port is not None or not HAVE_PICOWS or self.compression:
            return []
        from framework.transports.websocket._picows import PicowsServer

        server = PicowsServer(
            self.connections, ping_interval=self.ping_interval, ping_timeout=self.ping_timeout
        )
        return [server]

    async def start(self) -> None:
        if self.port is not None or not self.endpoints:
            # ASGI mode prepared in routes(); a standalone server reads the new router.
            self._prepare()
        connections = self.connections
        connections.draining = False
        connections.owner, connections.events = self, self.host.events
        events = self.host.events
        self.hub.on_drop = lambda sock, why: events.dropped(self, sock.id, why)
        for ep in self.endpoints.values():
            await call_hooks(ep.gateways, "after_init", self)
        if self.port is not None:
            from framework.transports.websocket._standalone import serve_standalone

            self._server = await serve_standalone(
                connections,
                host=self.host_name,
                port=self.port,
                compression=self.compression,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=self.close_timeout,
            )
        elif self.redact_query_in_logs:
            install_log_redaction()
        connections.accepting = True

    @property
    def bound_port(self) -> int | None:
        """The standalone server's port (useful with ``port=0``), else ``None``."""
        if self._server is None:
            return None
        for sock in self._server.sockets:
            port: int = sock.getsockname()[1]
            return port
        return None

    @property
    def ready(self) -> bool:
        return self.connections.accepting

    async def drain(self) -> None:
        """Stop accepting, let handlers in flight finish (up to ``shutdown_timeout``),
        end streams, send what is queued, and close every socket with 1001."""
        connections = self.connections
        connections.accepting = False
        connections.draining = True
        await connections.inflight.settle(self.shutdown_timeout, "WebSocket")
        sockets = list(self.hub.sockets.values())
        for sock in sockets:
            sock.streams.cancel_all()
            sock.begin_close(CLOSE_GOING_AWAY, "server shutting down", flush=True)
        readers = [s.reader for s in sockets if s.reader is not None and not s.reader.done()]
        waits = [s.wait_closed() for s in sockets]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.close_timeout + 1):
                await asyncio.gather(*waits, return_exceptions=True)
                if readers:
                    await asyncio.wait(readers)
        for ep in self.endpoints.values():
            await ep.dispatcher.feeds.close(self.shutdown_timeout)

    async def stop(self) -> None:
        await self.drain()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_timeout + 1):
                    await server.wait_closed()

    # -- pushing ---------------------------------------------------------------------

    async def publish(self, pattern: str, payload: bytes, event_id: str | None) -> None:
        """Push ``{"event": pattern, "data": payload}`` to every socket subscribed to a
        pattern matching ``pattern``: encoded once, queued on each socket."""
        targets = self.hub.subscribers(pattern)
        if not targets:
            return
        frame = self._wire(self.hub.encoder.message(pattern, payload))
        for sock in targets:
            sock.push(frame)

    def broadcast(
        self,
        event: str,
        data: Any,
        *,
        room: str | None = None,
        exclude: WsSocket | None = None,
    ) -> int:
        """Push ``{"event": event, "data": data}`` to every socket (or a room's), without
        waiting; returns how many sockets it was queued for."""
        frame = self._wire(self.hub.encoder.message(event, encode(data)))
        sent = 0
        for sock in self.hub.targets(room):
            if sock is not exclude and sock.push(frame):
                sent += 1
        return sent

    @property
    def sockets(self) -> dict[str, WsSocket]:
        """Open sockets by id (a copy)."""
        return dict(self.hub.sockets)

    def room(self, name: str) -> frozenset[WsSocket]:
        """The sockets in a room."""
        return frozenset(self.hub.rooms.get(name, ()))

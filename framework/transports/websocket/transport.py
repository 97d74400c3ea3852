"""``WebSocketTransport``: message handlers and gateways over WebSocket JSON frames.

The wire format is in ``_frames.py`` and docs/transports/websocket.md. By default the
transport serves on the app's HTTP port (starlette routes under uvicorn); with ``port=``
it runs its own ``websockets`` server instead, which skips the ASGI layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from framework.exceptions import ConfigurationError, PatternNotFoundError
from framework.messaging.codecs import encode
from framework.messaging.errors import error_payload
from framework.messaging.patterns import validate_pattern
from framework.messaging.router import MessageHandler
from framework.transports.base import Transport
from framework.transports.websocket._endpoint import Endpoint, build_endpoints, call_hooks
from framework.transports.websocket._frames import (
    CANCEL_EVENT,
    CONTROL_EVENTS,
    SUBSCRIBE_EVENT,
    UNSUBSCRIBE_EVENT,
    FrameError,
    parse,
)
from framework.transports.websocket._handshake import (
    Guard,
    Handshake,
    admit,
    install_log_redaction,
    origin_allowed,
)
from framework.transports.websocket._socket import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    Hub,
    SocketState,
    WsSocket,
)
from framework.transports.websocket.context import WsContext, WsResponse

if TYPE_CHECKING:
    from starlette.routing import BaseRoute
    from websockets.asyncio.server import Server

logger = logging.getLogger("framework.websocket")

Authenticate = Callable[[WsSocket, Any], "bool | Awaitable[bool]"]
SubscriptionGuard = Callable[[WsSocket, str], "bool | Awaitable[bool]"]

_NOT_FOUND = {"status": "error", "message": PatternNotFoundError.MESSAGE}
_SHUTTING_DOWN = {"status": "error", "message": "Server is shutting down"}
_FORBIDDEN = {"status": "error", "message": "Forbidden resource"}
_OPEN = SocketState.OPEN


_STREAM_TYPES: dict[type, bool] = {}


def _is_stream(result: Any) -> bool:
    """Whether a handler's result is an async iterator (a streamed reply).

    Cached per type: ``hasattr`` on a pydantic model goes through its ``__getattr__``
    and costs microseconds when the attribute is missing.
    """
    cls = result.__class__
    try:
        return _STREAM_TYPES[cls]
    except KeyError:
        pass
    if len(_STREAM_TYPES) >= 1000:
        _STREAM_TYPES.clear()
    found = _STREAM_TYPES[cls] = any("__aiter__" in vars(k) for k in cls.__mro__)
    return found


def _same(frame: bytes) -> bytes:
    return frame


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
        return await value
    return value


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
        self.endpoints: dict[str, Endpoint] = {}
        self._accepting = False
        self._draining = False
        self._inflight = 0
        self._idle: asyncio.Event | None = None
        self._server: Server | None = None
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
        self.endpoints = build_endpoints(self.path, router, self.host)

    def routes(self) -> list[BaseRoute]:
        if self.port is not None:
            return []
        from starlette.routing import WebSocketRoute

        from framework.transports.websocket._asgi import AsgiEndpoint

        self._prepare()
        return [WebSocketRoute(p, AsgiEndpoint(self, ep)) for p, ep in self.endpoints.items()]

    def server_options(self) -> dict[str, Any]:
        """uvicorn settings for the app's HTTP server: the frame size limit, keepalive
        and compression apply there when the transport shares the HTTP port."""
        if self.port is not None:
            return {}
        return {
            "ws_max_size": self.max_message_size,
            "ws_ping_interval": self.ping_interval,
            "ws_ping_timeout": self.ping_timeout,
            "ws_per_message_deflate": self.compression,
        }

    async def start(self) -> None:
        if self.port is not None or not self.endpoints:
            # ASGI mode prepared in routes(); a standalone server reads the new router.
            self._prepare()
        self._draining = False
        for ep in self.endpoints.values():
            await call_hooks(ep.gateways, "after_init", self)
        if self.port is not None:
            from framework.transports.websocket._standalone import serve_standalone

            self._server = await serve_standalone(self)
        elif self.redact_query_in_logs:
            install_log_redaction()
        self._accepting = True

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
        return self._accepting

    async def drain(self) -> None:
        """Stop accepting, let handlers in flight finish (up to ``shutdown_timeout``),
        end streams, send what is queued, and close every socket with 1001."""
        self._accepting = False
        self._draining = True
        if self._inflight:
            self._idle = asyncio.Event()
            try:
                async with asyncio.timeout(self.shutdown_timeout):
                    await self._idle.wait()
            except TimeoutError:
                logger.warning(
                    "%d WebSocket handler(s) still running after %g s; closing anyway",
                    self._inflight,
                    self.shutdown_timeout,
                )
        sockets = list(self.hub.sockets.values())
        for sock in sockets:
            sock.cancel_streams()
            sock.begin_close(CLOSE_GOING_AWAY, "server shutting down", flush=True)
        readers = [s.reader for s in sockets if s.reader is not None and not s.reader.done()]
        waits = [s.wait_closed() for s in sockets]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.close_timeout + 1):
                await asyncio.gather(*waits, return_exceptions=True)
                if readers:
                    await asyncio.wait(readers)

    async def stop(self) -> None:
        await self.drain()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_timeout + 1):
                    await server.wait_closed()

    # -- admitting and running a connection -----------------------------------------

    async def admit(self, handshake: Handshake) -> bool:
        """Whether to accept a connection (origin list, then guards)."""
        if not self._accepting:
            return False
        if not origin_allowed(handshake.origin, self.allowed_origins):
            logger.info("WebSocket refused: origin %r is not allowed", handshake.origin)
            return False
        return not self.guards or await admit(handshake, self.guards)

    def too_big(self, raw: str | bytes) -> bool:
        limit = self.max_message_size
        if len(raw) <= limit:
            # A str's UTF-8 form may be up to 4 bytes a character.
            return raw.__class__ is str and len(raw) * 4 > limit and len(raw.encode()) > limit
        return True

    async def open(
        self, sock: WsSocket, ep: Endpoint, recv: Callable[[], Awaitable[str | bytes | None]]
    ) -> bool:
        """Authenticate (when configured) and call ``on_connection``; ``False`` means the
        socket is being closed."""
        self.hub.add(sock)
        if self.authenticate is not None and not await self._authenticate(sock, recv):
            return False
        try:
            await call_hooks(ep.gateways, "on_connection", sock)
        except Exception:
            logger.exception("on_connection failed for %s; closing it", sock.id)
            sock.begin_close(CLOSE_INTERNAL_ERROR, "internal error", flush=False)
            return False
        return sock.state is _OPEN

    async def _authenticate(
        self, sock: WsSocket, recv: Callable[[], Awaitable[str | bytes | None]]
    ) -> bool:
        assert self.authenticate is not None
        enc = self.hub.encoder
        try:
            async with asyncio.timeout(self.auth_timeout):
                raw = await recv()
        except TimeoutError:
            sock.begin_close(CLOSE_POLICY, "authentication timeout", flush=False)
            return False
        if raw is None:
            return False
        ok = False
        fid = None
        try:
            event, data, fid, _, _ = parse(raw)
            if event == "auth":
                ok = bool(await _maybe_await(self.authenticate(sock, data)))
        except FrameError:
            ok = False
        except Exception as exc:
            logger.warning("authenticate raised %s; connection refused", type(exc).__name__)
            ok = False
        if not ok:
            sock.begin_close(CLOSE_POLICY, "unauthorized", flush=False)
            return False
        await sock.send_now(enc.reply("auth", b"true", fid))
        return True

    async def closed(self, sock: WsSocket, ep: Endpoint, code: int | None) -> None:
        """The connection is gone: release it and call ``on_disconnect``."""
        sock.finish(code)
        try:
            await call_hooks(ep.gateways, "on_disconnect", sock)
        except Exception:
            logger.exception("on_disconnect failed for %s", sock.id)

    def close_too_big(self, sock: WsSocket) -> None:
        logger.info("Closing %s: frame larger than %d bytes", sock.id, self.max_message_size)
        sock.begin_close(CLOSE_TOO_BIG, "message too big", flush=False)

    # -- frames ----------------------------------------------------------------------

    async def on_frame(self, sock: WsSocket, ep: Endpoint, raw: str | bytes) -> bytes | None:
        """Handle one inbound frame: route it and run the handler.

        Returns the reply frame for the caller to write (the connection's reader writes
        it inline: no extra task or coroutine per reply), or ``None``.
        """
        enc = self.hub.encoder
        try:
            event, data, fid, headers, frame = parse(raw)
        except FrameError as err:
            return enc.exception(err.payload(), err.id)
        if self._draining:
            return enc.exception(_SHUTTING_DOWN, fid)
        handler = ep.message(event)
        if handler is not None:
            ctx = WsContext(event, headers, frame, sock) if handler.needs_context else None
            self._inflight += 1
            try:
                result = await handler.call(data, ctx)
                if _is_stream(result):
                    self._start_stream(sock, event, fid, result, handler)
                    return None
                if result.__class__ is WsResponse:
                    event, result = result.event, result.data
                return enc.reply(event, encode(result), fid)
            except Exception as exc:
                return enc.exception(error_payload(exc, where=handler.name), fid)
            finally:
                self._inflight -= 1
                if not self._inflight and self._idle is not None:
                    self._idle.set()
        handlers = ep.events(event)
        if handlers:
            return await self._on_event(sock, event, data, fid, headers, frame, handlers)
        if event in CONTROL_EVENTS:
            return await self._control(sock, event, data, fid)
        return enc.exception(_NOT_FOUND, fid)

    def _done(self) -> None:
        self._inflight -= 1
        if not self._inflight and self._idle is not None:
            self._idle.set()

    async def _on_event(
        self,
        sock: WsSocket,
        event: str,
        data: Any,
        fid: Any,
        headers: Any,
        frame: Any,
        handlers: tuple[MessageHandler, ...],
    ) -> bytes | None:
        ctx = None
        if any(h.needs_context for h in handlers):
            ctx = WsContext(event, headers, frame, sock)
        failure: dict[str, Any] | None = None
        self._inflight += 1
        try:
            for h in handlers:
                try:
                    await h.call(data, ctx)
                except Exception as exc:
                    payload = error_payload(exc, where=h.name)
                    failure = failure or payload
        finally:
            self._done()
        enc = self.hub.encoder
        if failure is not None:
            return enc.exception(failure, fid)
        if fid is not None:
            return enc.reply(event, b"null", fid)
        return None

    def _start_stream(
        self, sock: WsSocket, event: str, fid: Any, result: Any, handler: MessageHandler
    ) -> None:
        if sock.stream_count >= self.max_streams:
            close = getattr(result, "aclose", None)
            if close is not None:
                asyncio.get_running_loop().create_task(close())
            payload = {"status": "error", "message": "Too many open streams on this connection"}
            frame = self.hub.encoder.exception(payload, fid)
            sock.push(self._wire(frame))
            return
        task = asyncio.get_running_loop().create_task(
            self._stream(sock, event, fid, result, handler)
        )
        sock.add_stream(fid if fid is not None else object(), task)

    async def _stream(
        self, sock: WsSocket, event: str, fid: Any, result: Any, handler: MessageHandler
    ) -> None:
        enc = self.hub.encoder
        iterator: AsyncIterator[Any] = aiter(result)
        try:
            async for item in iterator:
                if not await sock.send_now(enc.item(event, encode(item), fid)):
                    return
            await sock.send_now(enc.done(event, fid))
        except Exception as exc:
            await sock.send_now(enc.exception(error_payload(exc, where=handler.name), fid))
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def _control(self, sock: WsSocket, event: str, data: Any, fid: Any) -> bytes | None:
        enc = self.hub.encoder
        if event == CANCEL_EVENT:
            found = sock.cancel_stream(data)
            return enc.reply(event, b"true" if found else b"false", fid)
        patterns = [data] if isinstance(data, str) else data
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            message = f'"{event}" takes a pattern or a list of patterns'
            return enc.exception({"status": "error", "message": message}, fid)
        if event == UNSUBSCRIBE_EVENT:
            for p in patterns:
                self.hub.unsubscribe(sock, p)
        else:
            assert event == SUBSCRIBE_EVENT
            problem = await self._check_subscriptions(sock, patterns)
            if problem is not None:
                return enc.exception(problem, fid)
            if sock.state is not _OPEN:
                return None
            for p in patterns:
                self.hub.subscribe(sock, p)
        return enc.reply(event, encode(sorted(sock.subscriptions_)), fid)

    async def _check_subscriptions(
        self, sock: WsSocket, patterns: list[str]
    ) -> dict[str, Any] | None:
        for p in patterns:
            try:
                validate_pattern(p)
            except ConfigurationError as exc:
                return {"status": "error", "message": str(exc)}
        if len(sock.subscriptions_ | set(patterns)) > self.max_subscriptions:
            message = f"At most {self.max_subscriptions} subscriptions per connection"
            return {"status": "error", "message": message}
        if self.can_subscribe is not None:
            for p in patterns:
                try:
                    allowed = await _maybe_await(self.can_subscribe(sock, p))
                except Exception as exc:
                    logger.warning("can_subscribe raised %s; refused", type(exc).__name__)
                    allowed = False
                if not allowed:
                    return dict(_FORBIDDEN)
        return None

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

    def emit_to(self, socket_id: str, event: str, data: Any) -> bool:
        """Push an event to one socket by id; ``False`` if it is gone or too slow."""
        sock = self.hub.sockets.get(socket_id)
        return sock is not None and sock.emit(event, data)

    @property
    def sockets(self) -> dict[str, WsSocket]:
        """Open sockets by id (a copy)."""
        return dict(self.hub.sockets)

    def room(self, name: str) -> frozenset[WsSocket]:
        """The sockets in a room."""
        return frozenset(self.hub.rooms.get(name, ()))

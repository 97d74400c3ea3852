"""``create_app`` and the ``Application``: build the graph, start transports, shut down.

Start-up order: scan modules and check every dependency -> instantiate singletons
(awaiting async factories) -> compile the dispatch table and HTTP routes ->
``on_module_init`` -> connect registered clients and start transports ->
``on_application_bootstrap``.

Shutdown order: ``before_application_shutdown`` -> stop transports (each stops taking
messages and lets in-flight handlers finish) -> close clients -> ``on_module_destroy`` ->
``on_application_shutdown``. Unlike NestJS, modules are destroyed only after transports
drained, so no handler runs against a destroyed provider.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

import injector
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from framework.di.container import Container, EnhancerOverrides
from framework.di.lifecycle import call_hook
from framework.di.metadata import Provider, Scope, value_provider
from framework.exceptions import ConfigurationError
from framework.http._limits import HEADER_TIMEOUT
from framework.http._routing import HttpRoute, build_http_routes
from framework.http._sse import ROUTE_STREAMS_STATE, RouteStreams
from framework.messaging._pipeline import GlobalEnhancers
from framework.messaging.codecs import encode
from framework.messaging.router import HandlerMiddleware, MessageHandler, Router, build_router
from framework.observability import Installation, Observability, install
from framework.transports.base import (
    NO_EVENTS,
    ClientProxy,
    PublishRelay,
    Transport,
    TransportEvents,
)
from framework.transports.memory import MemoryTransport

T = TypeVar("T")

logger = logging.getLogger("framework")


@dataclass(frozen=True, slots=True)
class AppDescription:
    """What an app serves, from ``Application.describe()``.

    Attributes:
        transports: the names of the app's transports, in start order.
        http_routes: the controllers' HTTP and ``@sse`` routes, in matching order.
        endpoints: ``(transport name, starlette route)`` for every endpoint a transport
            mounts on the HTTP server (a WebSocket path, an SSE stream).
        handlers: every compiled ``@message_pattern``/``@event_pattern`` handler.
    """

    transports: list[str]
    http_routes: list[HttpRoute]
    endpoints: list[tuple[str, BaseRoute]]
    handlers: list[MessageHandler]


PEER_PREFIX = "$"
"""Relayed patterns starting with it are messages between transports (``to_peers``),
never delivered to subscribers."""


class _ProbeHost:
    """The ``TransportHost`` that ``describe()`` binds transports to."""

    def __init__(self, router: Router) -> None:
        self._router = router

    @property
    def router(self) -> Router:
        return self._router

    @property
    def logger(self) -> logging.Logger:
        return logger

    @property
    def events(self) -> TransportEvents:
        return NO_EVENTS

    async def to_peers(self, channel: str, payload: bytes) -> None:
        return None

    def fail(self, reason: str) -> None:
        return None


class _Fanout(TransportEvents):
    """Transport events for several observers, in order."""

    def __init__(self, observers: Sequence[TransportEvents]) -> None:
        self.observers = tuple(observers)

    def connected(self, transport: Transport, peer: Any) -> None:
        for observer in self.observers:
            observer.connected(transport, peer)

    def disconnected(self, transport: Transport, peer: Any) -> None:
        for observer in self.observers:
            observer.disconnected(transport, peer)

    def retried(self, transport: Transport, handler: MessageHandler) -> None:
        for observer in self.observers:
            observer.retried(transport, handler)

    def dead_lettered(self, transport: Transport, handler: MessageHandler) -> None:
        for observer in self.observers:
            observer.dead_lettered(transport, handler)

    def dropped(self, transport: Transport, peer: Any, why: str) -> None:
        for observer in self.observers:
            observer.dropped(transport, peer, why)


class Application:
    """A running (or ready to run) app. Use ``create_app`` to make one.

    It is an ASGI application (``uvicorn module:app`` works; the lifespan starts and stops
    it), an async context manager (``async with app:``), and ``app.run()`` serves it.
    """

    def __init__(
        self,
        root_module: Any,
        transports: Sequence[Transport],
        default_client: ClientProxy | None,
        providers: Sequence[Any],
        overrides: Sequence[Provider] = (),
        relay: PublishRelay | None = None,
        observability: Observability | None = None,
    ) -> None:
        self.root_module = root_module
        self.transports = list(transports)
        self.memory = next(t for t in self.transports if isinstance(t, MemoryTransport))
        self.default_client = default_client or self.memory.create_client()
        self._extra_providers = list(providers)
        self._overrides = list(overrides)
        self._enhancer_overrides: list[tuple[str, Any, Any]] = []  # set by testing modules
        self._enhancers: GlobalEnhancers = {}
        self._middlewares: list[HandlerMiddleware] = []
        self._observers: list[TransportEvents] = []
        self._events: TransportEvents = NO_EVENTS
        self._container: Container | None = None
        self._router: Router | None = None
        self.http_routes: list[HttpRoute] = []
        self._own_routes: list[BaseRoute] = []
        self._clients: list[ClientProxy] = []
        self.relay = relay
        self._local_seq = 0
        # Local event ids are "<epoch>-<seq>": a client resuming after a restart of this
        # process cannot mistake new events for ones it has seen.
        self.event_id_prefix = format(int(time.time() * 1000), "x") + "-"
        self._started = False
        self.failure: str | None = None
        """Why a transport stopped the app (``fail``), else ``None``."""
        self._servers: list[Any] = []
        self.observability = observability
        self._observed: Installation | None = None
        self._starlette = Starlette(
            lifespan=self._lifespan,
            middleware=observability.middleware() if observability is not None else None,
        )
        self.route_streams = RouteStreams()
        """The open event streams this app serves (``@sse`` routes, SSE replies)."""
        setattr(self._starlette.state, ROUTE_STREAMS_STATE, self.route_streams)

    # -- configuration -------------------------------------------------------------

    def use_global_guards(self, *guards: Any) -> None:
        """Guards for every handler and route (before controller and handler guards)."""
        self._add_enhancers("guards", guards)

    def use_global_interceptors(self, *interceptors: Any) -> None:
        """Interceptors around every handler and route."""
        self._add_enhancers("interceptors", interceptors)

    def use_global_filters(self, *filters: Any) -> None:
        """Exception filters for every handler and route (tried after the closer ones)."""
        self._add_enhancers("filters", filters)

    def use_global_pipes(self, *pipes: Any) -> None:
        """Pipes applied to every validated payload."""
        self._add_enhancers("pipes", pipes)

    def _add_enhancers(self, kind: str, items: tuple[Any, ...]) -> None:
        if self._started:
            raise ConfigurationError(f"Add global {kind} before the app starts")
        self._enhancers.setdefault(kind, []).extend(items)

    def use_middleware(self, middleware_class: Any, *args: Any, **options: Any) -> None:
        """Wrap the HTTP side of the app (routes, ``@sse`` streams, the SSE transport,
        WebSocket upgrades on the app port) in an ASGI middleware, as Starlette's
        ``Middleware(middleware_class, *args, **options)``.

        The last one added is the outermost: it sees a request first, before the ones
        added earlier and before observability's. Messages on other transports (Kafka,
        the standalone WebSocket server) do not pass through it; use
        ``use_handler_middleware`` or interceptors for those.

        Raises:
            ConfigurationError: the app already served a request.
        """
        if self._starlette.middleware_stack is not None:
            raise ConfigurationError("Add HTTP middlewares before the app serves its first request")
        self._starlette.add_middleware(middleware_class, *args, **options)

    def enable_cors(
        self,
        allow_origins: Sequence[str] = ("*",),
        *,
        allow_origin_regex: str | None = None,
        allow_methods: Sequence[str] = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"),
        allow_headers: Sequence[str] = ("*",),
        allow_credentials: bool = False,
        expose_headers: Sequence[str] = (),
        max_age: int = 600,
    ) -> None:
        """Answer CORS preflights and add the CORS headers (NestJS's ``enableCors``, with
        its defaults; Starlette's ``CORSMiddleware`` does the work), as the outermost
        middleware so errors carry the headers too.

        Args:
            allow_origins: origins allowed, e.g. ``["https://shop.example"]``; ``"*"``
                for any (not with ``allow_credentials``: browsers refuse it).
            allow_origin_regex: origins allowed by a regular expression, too.
            allow_methods: methods allowed for cross-origin requests.
            allow_headers: request headers allowed (``"*"``: whatever the browser asks).
            allow_credentials: allow cookies and ``Authorization``.
            expose_headers: response headers the page's script may read.
            max_age: seconds a browser may cache a preflight answer.

        Raises:
            ConfigurationError: ``"*"`` with ``allow_credentials``, or the app already
                served a request.
        """
        from starlette.middleware.cors import CORSMiddleware

        if allow_credentials and "*" in allow_origins:
            raise ConfigurationError(
                "enable_cors: allow_origins='*' with allow_credentials=True is refused by "
                "browsers; list the origins"
            )
        self.use_middleware(
            CORSMiddleware,
            allow_origins=list(allow_origins),
            allow_origin_regex=allow_origin_regex,
            allow_methods=list(allow_methods),
            allow_headers=list(allow_headers),
            allow_credentials=allow_credentials,
            expose_headers=list(expose_headers),
            max_age=max_age,
        )

    def use_handler_middleware(self, *middlewares: HandlerMiddleware) -> None:
        """Wrap every message handler's call (``HandlerMiddleware.wrap``) when the router
        is compiled at start, the first added outermost (inside observability's)."""
        if self._started:
            raise ConfigurationError("Add handler middlewares before the app starts")
        self._middlewares.extend(middlewares)

    def use_transport_events(self, *observers: TransportEvents) -> None:
        """Tell ``observers`` what happens to the transports (connections, retries,
        dead letters, dropped clients): every transport reports to ``events``."""
        if self._started:
            raise ConfigurationError("Add transport event observers before the app starts")
        self._observers.extend(observers)

    # -- TransportHost ---------------------------------------------------------------

    @property
    def router(self) -> Router:
        if self._router is None:
            raise ConfigurationError("The app has not started yet: use `async with app:`")
        return self._router

    @property
    def logger(self) -> logging.Logger:
        return logger

    @property
    def events(self) -> TransportEvents:
        """Where transports report what happens to them (see ``use_transport_events``)."""
        return self._events

    def fail(self, reason: str) -> None:
        """A transport cannot go on (``KafkaTransport(on_failure="exit")``): record why
        and stop the servers of ``server()``/``run()``, which then exit with status 1.
        An app run another way reads ``app.failure``."""
        logger.critical("Stopping the app: %s", reason)
        self.failure = reason
        for server in self._servers:
            server.should_exit = True

    @property
    def container(self) -> Container:
        if self._container is None:
            raise ConfigurationError("The app has not started yet: use `async with app:`")
        return self._container

    @property
    def injector(self) -> injector.Injector:
        """An ``injector.Injector`` over the app's graph: ``app.injector.get(T)`` returns
        the singleton the app uses, and builds ``@inject`` classes from the app's
        providers."""
        return self.container.injector

    # -- lifecycle -------------------------------------------------------------------

    async def _build(
        self, middlewares: Sequence[HandlerMiddleware] = ()
    ) -> tuple[Container, Router, list[HttpRoute]]:
        """Scan the graph, create the singletons, compile handlers and routes."""
        core: list[Any] = [
            value_provider(ClientProxy, self.default_client),
            value_provider(Application, self),
            value_provider(Router, None),
            *self._extra_providers,
        ]
        container = Container(
            self.root_module,
            extra_global_providers=core,
            overrides=self._overrides,
            enhancer_overrides=EnhancerOverrides(self._enhancer_overrides),
        )
        await container.instantiate()
        router = await build_router(container, self._enhancers, [*middlewares, *self._middlewares])
        container.find(Router).instance = router
        http_routes = await build_http_routes(container, self._enhancers)
        container.enhancer_overrides.check_all_used()
        return container, router, http_routes

    async def describe(self) -> AppDescription:
        """What the app serves: HTTP routes, transport endpoints and message handlers.

        On an app that is not running, the graph is built apart from the app: providers
        are created (async factories awaited) but no lifecycle hook runs, no client
        connects and no transport starts. Used by ``framework routes``.

        Raises:
            ConfigurationError: the app is wired wrongly (as ``start`` would raise).
        """
        if self._started:
            router, http_routes = self.router, self.http_routes
        else:
            _, router, http_routes = await self._build()
            probe = _ProbeHost(router)
            for transport in self.transports:
                # Bound again by start(); transports may need the router to list routes.
                transport.bind(probe)
        endpoints = [(t.name, route) for t in self.transports for route in t.routes()]
        return AppDescription(
            transports=[t.name for t in self.transports],
            http_routes=list(http_routes),
            endpoints=endpoints,
            handlers=list(router.handlers),
        )

    async def start(self) -> None:
        """Build and start everything (see the module docstring for the order)."""
        if self._started:
            return
        observed = self._observed = install(self, self.observability)
        middlewares = observed.middlewares if observed is not None else []
        container, self._router, self.http_routes = await self._build(middlewares)
        self._container = container
        observers = list(self._observers)
        if observed is not None:
            observed.attach(self)
            if observed.events is not None:
                observers.insert(0, observed.events)
        if len(observers) > 1:
            self._events = _Fanout(observers)
        else:
            self._events = observers[0] if observers else NO_EVENTS
        routes = [r.route for r in self.http_routes]
        if observed is not None:
            routes.extend(observed.routes)
        for transport in self.transports:
            transport.bind(self)
            routes.extend(transport.routes())
        # Routes mounted by hand (app.asgi) stay; ours replace the previous start's, so an
        # app started again after stop() does not serve every route twice.
        mounted = self._starlette.router.routes
        mounted[:] = [r for r in mounted if r not in self._own_routes] + routes
        self._own_routes = routes
        instances = container.instances_in_order()
        await call_hook(instances, "on_module_init")
        self._clients = [i for i in instances if isinstance(i, ClientProxy)]
        for client in self._clients:
            await client.connect()
        started: list[Transport] = []
        try:
            for transport in self.transports:
                await transport.start()
                started.append(transport)
        except BaseException:
            for transport in reversed(started):
                with contextlib.suppress(Exception):
                    await transport.stop()
            raise
        if self.relay is not None:
            await self.relay.start(self.deliver)
        self._started = True
        await call_hook(instances, "on_application_bootstrap")
        logger.info(
            "App started: %d handlers, %d routes, transports: %s",
            len(self._router.handlers),
            len(self.http_routes),
            ", ".join(t.name for t in self.transports),
        )

    async def stop(self, signal: str | None = None) -> None:
        """Shut down gracefully (see the module docstring for the order)."""
        if not self._started:
            return
        self._started = False
        instances = list(reversed(self.container.instances_in_order()))
        await call_hook(instances, "before_application_shutdown", signal)
        if self.relay is not None:
            await self.relay.stop()
        for transport in reversed(self.transports):
            try:
                await transport.stop()
            except Exception:
                logger.exception("Transport %s failed to stop cleanly", transport.name)
        if self._observed is not None:
            self._observed.close()
            self._observed = None
        self._events = NO_EVENTS
        for client in self._clients:
            try:
                await client.close()
            except Exception:
                logger.exception("Client %r failed to close cleanly", client)
        await call_hook(instances, "on_module_destroy")
        await call_hook(instances, "on_application_shutdown", signal)

    async def __aenter__(self) -> Application:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop("SIGTERM")

    # -- use -------------------------------------------------------------------------

    @overload
    def get(self, token: type[T]) -> T: ...

    @overload
    def get(self, token: Any) -> Any: ...

    def get(self, token: Any) -> Any:
        """The singleton instance for ``token`` (a class, ``InjectionToken`` or string)."""
        rec = self.container.find(token)
        if rec.scope is not Scope.SINGLETON:
            raise ConfigurationError(f"{rec.name} is {rec.scope.value}-scoped; inject it instead")
        return rec.instance

    @property
    def client(self) -> ClientProxy:
        """The default client (in-memory unless ``create_app(default_client=...)``)."""
        return self.default_client

    async def publish(self, pattern: str, data: Any) -> None:
        """Push ``data`` to every subscriber of ``pattern`` on every push transport
        (WebSocket, SSE), on every instance when a relay is configured.

        The data is encoded to JSON once, whatever the number of subscribers.
        """
        if pattern.startswith(PEER_PREFIX):
            raise ConfigurationError(
                f"Pattern {pattern!r}: patterns starting with {PEER_PREFIX!r} are reserved "
                "for messages between transports"
            )
        payload = encode(data)
        if self.relay is not None:
            await self.relay.publish(pattern, payload)
        else:
            self._local_seq += 1
            await self.deliver(pattern, payload, f"{self.event_id_prefix}{self._local_seq}")

    async def to_peers(self, channel: str, payload: bytes) -> None:
        """``on_peer_message(channel, payload)`` on every transport of every instance
        (this one included): the relay carries it as the pattern ``$<channel>``."""
        if self.relay is not None:
            await self.relay.publish(PEER_PREFIX + channel, payload)
        else:
            await self.deliver(PEER_PREFIX + channel, payload, None)

    async def deliver(self, pattern: str, payload: bytes, event_id: str | None) -> None:
        """Hand a published event to this instance's push transports (a peer message,
        ``$<channel>``, to every transport's ``on_peer_message``)."""
        if pattern.startswith(PEER_PREFIX):
            channel = pattern[len(PEER_PREFIX) :]
            for transport in self.transports:
                try:
                    await transport.on_peer_message(channel, payload)
                except Exception:
                    logger.exception(
                        "Transport %s failed on peer message %r", transport.name, channel
                    )
            return
        for transport in self.transports:
            try:
                await transport.publish(pattern, payload, event_id)
            except Exception:
                logger.exception("Transport %s failed to publish %r", transport.name, pattern)

    @property
    def asgi(self) -> Starlette:
        """The starlette app serving HTTP routes and the transports' endpoints."""
        return self._starlette

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        await self._starlette(scope, receive, send)

    async def drain(self) -> None:
        """Let transports end long-lived connections gracefully (WebSocket close 1001)
        before the HTTP server drops them; ``server()``/``run()`` call it at shutdown."""
        # @sse route streams never end by themselves; uvicorn would wait on them.
        self.route_streams.close()
        for transport in reversed(self.transports):
            try:
                await transport.drain()
            except Exception:
                logger.exception("Transport %s failed to drain", transport.name)

    def server(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        header_timeout: float | None = HEADER_TIMEOUT,
        **uvicorn_options: Any,
    ) -> Any:
        """The ``uvicorn.Server`` that ``run()`` uses; ``await server.serve()`` runs it in
        your own event loop. Transports add their settings (``server_options()``); yours
        win. On shutdown it stops accepting, drains the transports, then lets uvicorn
        close what is left.

        ``header_timeout``: seconds a client has to send its request headers (and to
        have a WebSocket handshake answered) before the connection is closed (default
        10; ``None``: wait forever, as plain uvicorn does).
        """
        import uvicorn

        from framework.http._server import TIMEOUT_ATTR, HeaderTimeoutProtocol
        from framework.transports.websocket._uvicorn import protocol_class, routes_of

        app = self

        class DrainingServer(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                _log_runtime(self.config)
                await super().startup(sockets)

            async def shutdown(self, sockets: Any = None) -> None:
                for server in self.servers:
                    server.close()
                await app.drain()
                await super().shutdown(sockets)

        # websockets-sansio: the non-deprecated websockets implementation, and the
        # fastest of uvicorn's (see docs/transports/websocket.md).
        options: dict[str, Any] = {
            "log_level": "info",
            "ws": "websockets-sansio",
            "http": HeaderTimeoutProtocol,
        }
        for transport in self.transports:
            options.update(transport.server_options())
        routes = routes_of(self.transports)
        if routes:
            # The transports' WebSocket paths on picows; other upgrades keep uvicorn's.
            options["ws"] = protocol_class(routes)
        options.update(uvicorn_options)
        config = uvicorn.Config(cast(Any, self), host=host, port=port, **options)
        setattr(config, TIMEOUT_ATTR, header_timeout)
        server = DrainingServer(config)
        self._servers.append(server)
        return server

    def run(self, host: str = "127.0.0.1", port: int = 8000, **uvicorn_options: Any) -> None:
        """Serve the app with uvicorn until SIGINT or SIGTERM, then shut down gracefully
        (the options are ``server()``'s).

        The event loop is uvloop and the HTTP parser httptools when they are installed
        (the default install has both where they have wheels), else asyncio's loop and
        h11; ``loop="asyncio"`` chooses the fallback. A log line at startup names both.
        """
        # uvicorn re-raises Ctrl-C once the graceful shutdown is done: nothing is left to
        # do, and a traceback would only alarm the user.
        with contextlib.suppress(KeyboardInterrupt):
            self.server(host, port, **uvicorn_options).run()
        if self.failure is not None:
            raise SystemExit(1)


def _log_runtime(config: Any) -> None:
    """Name the event loop and HTTP parser that serve the app (uvicorn's ``loop`` and
    ``http`` options pick uvloop and httptools when they are importable)."""
    import asyncio

    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    # The framework's HTTP protocol derives from uvicorn's (httptools when importable).
    bases = config.http_protocol_class.__mro__
    parser = "httptools" if any("httptools" in c.__module__ for c in bases) else "h11"
    # uvicorn's logger: its handler is configured even when the app configured none.
    logging.getLogger("uvicorn.error").info("Event loop: %s; HTTP parser: %s", loop, parser)


def create_app(
    root_module: Any,
    *,
    transports: Sequence[Transport] | None = None,
    default_client: ClientProxy | None = None,
    providers: Sequence[Provider | type] = (),
    relay: PublishRelay | None = None,
    observability: Observability | None = None,
) -> Application:
    """Create an app from its root module.

    Args:
        root_module: the ``@module`` class (or ``DynamicModule``) at the top of the graph.
        transports: server transports; an in-memory transport is always added (it is the
            embedded default and the in-process event emitter), so ``None`` means memory
            only.
        default_client: what injecting ``ClientProxy`` gives; the in-memory client if
            ``None``.
        providers: extra global providers, visible in every module.
        relay: carries ``app.publish`` events to every instance (``KafkaRelay``); without
            one, published events reach this process's WebSocket/SSE clients only.
        observability: health endpoints, metrics and trace context
            (``framework.observability.Observability``); see docs/operations.md.
    """
    chosen = list(transports or [])
    if not any(isinstance(t, MemoryTransport) for t in chosen):
        chosen.insert(0, MemoryTransport())
    return Application(
        root_module, chosen, default_client, providers, relay=relay, observability=observability
    )

"""``Observability``: what ``create_app(..., observability=...)`` turns on, and installing
it on a starting app."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from framework.exceptions import ConfigurationError
from framework.messaging.context import MessageContext
from framework.messaging.router import HandlerMiddleware
from framework.observability._context import CURRENT, MessageScope, trace_headers
from framework.observability._health import health_routes
from framework.observability._instrument import InstrumentMiddleware
from framework.observability._logging import logging_context_wanted
from framework.observability._metrics import (
    DEFAULT_BUCKETS,
    MessageMetrics,
    MetricsCollector,
    MetricsEvents,
    prometheus,
)
from framework.transports.base import ClientProxy, HeaderHook, TransportEvents
from framework.transports.memory import MemoryTransport

if TYPE_CHECKING:
    from framework.application import Application

OTEL_API_REQUIREMENT = "opentelemetry-api>=1.20"


class HttpScopeMiddleware:
    """Sets the message scope for HTTP requests: transport ``"http"``, the path as the
    pattern, and the request's ``traceparent``, so clients called from HTTP routes
    carry the trace on."""

    def __init__(self, app: ASGIApp, tracing: bool = True) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = MessageContext(scope["path"], "http", Headers(scope=scope))
        token = CURRENT.set(MessageScope(request, None, self.tracing))
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT.reset(token)


class Observability:
    """Health endpoints, metrics and trace context for an app.

    Pass it to ``create_app(..., observability=Observability(...))``. Logging is set up
    apart, with ``configure_logging()``.

    Args:
        health_path: serve ``GET <health_path>/live`` and ``<health_path>/ready`` on the
            app's HTTP server; ``None`` serves no health endpoints.
        metrics_path: serve Prometheus metrics at this path (needs the optional
            ``prometheus-client`` package); ``None`` (default) collects no metrics.
        tracing: carry W3C ``traceparent``/``tracestate`` from every incoming message
            and HTTP request to the handler and onto every message it sends (a message
            without one starts a new trace).
        latency_buckets: upper bounds of the handler latency histogram, in seconds.
        registry: the prometheus-client ``CollectorRegistry`` to register the
            framework's metrics in and to serve at ``metrics_path``; ``None`` makes one
            per app with the process and GC collectors. Pass
            ``prometheus_client.REGISTRY`` to serve your own metrics too (then run one
            app per process, or the registry refuses the second one's metrics).
        opentelemetry: run every handled message and HTTP request in an OpenTelemetry
            span (needs the ``otel`` extra), from the global tracer provider unless
            ``tracer_provider`` is given; the trace context carried out is the span's.
        tracer_provider: the OpenTelemetry ``TracerProvider`` to make spans with;
            giving one turns ``opentelemetry`` on.

    Raises:
        ConfigurationError: ``metrics_path`` is set but prometheus-client is missing,
            OpenTelemetry is asked for but not installed or with ``tracing=False``, or
            a path does not start with ``/``.
    """

    def __init__(
        self,
        *,
        health_path: str | None = "/health",
        metrics_path: str | None = None,
        tracing: bool = True,
        latency_buckets: Sequence[float] = DEFAULT_BUCKETS,
        registry: Any = None,
        opentelemetry: bool = False,
        tracer_provider: Any = None,
    ) -> None:
        for label, path in (("health_path", health_path), ("metrics_path", metrics_path)):
            if path is not None and not path.startswith("/"):
                raise ConfigurationError(f"{label} must start with '/', got {path!r}")
        if metrics_path is not None:
            prometheus()
        self.opentelemetry = opentelemetry or tracer_provider is not None
        if self.opentelemetry:
            _require_opentelemetry(tracing)
        self.tracer_provider = tracer_provider
        self.health_path = health_path
        self.metrics_path = metrics_path
        self.tracing = tracing
        self.latency_buckets = tuple(latency_buckets)
        self.registry = registry
        # Checked now, not at the first scrape.
        MessageMetrics(self.latency_buckets)

    def middleware(self) -> list[Middleware]:
        """ASGI middleware for the app's HTTP server (the HTTP request scope)."""
        if self.opentelemetry:
            from framework.observability._otel import SpanHttpMiddleware, tracer

            return [Middleware(SpanHttpMiddleware, tracer=tracer(self.tracer_provider))]
        return [Middleware(HttpScopeMiddleware, tracing=self.tracing)]

    def install(self, app: Application) -> Installation:
        """What this app gets: handler middlewares and transport events now, routes and
        client header hooks once it is built (``Installation.attach``)."""
        return Installation(app, self)


class Installation:
    """What one starting app got: its handler middlewares, its transport events, its
    routes and metrics; ``close()`` at shutdown.

    Everything is the app's own, so two apps in one process keep apart: each has its own
    metrics, and tracing adds its header hook only to its own clients.
    """

    def __init__(self, app: Application, config: Observability) -> None:
        self.config = config
        self.routes: list[BaseRoute] = []
        self.metrics: MessageMetrics | None = None
        self.events: TransportEvents | None = None
        self.middlewares: list[HandlerMiddleware] = []
        self._registry: Any = None
        self._collector: MetricsCollector | None = None
        self._hooked: list[ClientProxy] = []
        scoped = config.tracing or logging_context_wanted()
        if config.metrics_path is not None:
            self.metrics = MessageMetrics(config.latency_buckets)
            self.metrics.transports = list(app.transports)
            self.events = MetricsEvents(self.metrics)
        if config.opentelemetry:
            from framework.observability._otel import SpanMiddleware, tracer

            # The span sets the message scope: inside it, metrics only.
            self.middlewares.append(SpanMiddleware(tracer(config.tracer_provider)))
            scoped = False
        if scoped or self.metrics is not None:
            tracing = config.tracing and not config.opentelemetry
            self.middlewares.append(
                InstrumentMiddleware(scoped=scoped, tracing=tracing, metrics=self.metrics)
            )
        if config.health_path is not None:
            self.routes.extend(health_routes(config.health_path, app.transports))

        # One hook object per app: another app's tracing adds and removes its own.
        def traced(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
            return trace_headers(headers)

        self._trace_hook: HeaderHook = traced

    def attach(self, app: Application) -> None:
        """The app is built: serve the metrics, and add trace context on its clients."""
        if self.metrics is not None and self.config.metrics_path is not None:
            self._register(self.config)
            self.routes.append(_metrics_route(self.config.metrics_path, self._registry))
        if self.config.tracing:
            self._trace_clients(app)

    def _trace_clients(self, app: Application) -> None:
        """The memory transports' clients (made before or after), the default client and
        the registered ones: those that do not already add trace context."""
        hook = self._trace_hook
        # A memory client's hooks are its transport's, shared by every client of it made
        # before or after: hooking one client of each memory transport hooks them all.
        memory = [t.create_client() for t in app.transports if isinstance(t, MemoryTransport)]
        clients = [*memory, app.default_client, *app.container.instances_in_order()]
        for client in clients:
            if not isinstance(client, ClientProxy):
                continue
            hooks = client.header_hooks
            if hook not in hooks and trace_headers not in hooks:
                client.add_header_hook(hook)
                self._hooked.append(client)

    def _register(self, config: Observability) -> None:
        prom = prometheus()
        assert self.metrics is not None
        registry = config.registry
        if registry is None:
            registry = prom.CollectorRegistry()
            prom.ProcessCollector(registry=registry)
            prom.GCCollector(registry=registry)
        collector = MetricsCollector(self.metrics)
        try:
            registry.register(collector)
        except ValueError as exc:
            raise ConfigurationError(
                f"The metrics registry already has the framework's metrics ({exc}); another "
                "app in this process registered them: give each app its own registry "
                "(the default) instead of a shared one"
            ) from None
        self._registry, self._collector = registry, collector

    def close(self) -> None:
        """Unregister the metrics and take the header hooks away (the app stopped)."""
        for client in self._hooked:
            client.remove_header_hook(self._trace_hook)
        self._hooked = []
        if self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None


def _require_opentelemetry(tracing: bool) -> None:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "OpenTelemetry spans need opentelemetry-api, which is not installed: "
            f"`pip install 'framework[otel]'` (the `otel` extra: '{OTEL_API_REQUIREMENT}'; "
            "your app adds an SDK such as opentelemetry-sdk to export spans), or leave "
            "opentelemetry off"
        ) from None
    if not tracing:
        raise ConfigurationError(
            "opentelemetry=True carries the spans' trace context on, so it needs "
            "tracing=True (the default)"
        )


def _metrics_route(path: str, registry: Any) -> Route:
    prom = prometheus()

    async def metrics(_: Request) -> Response:
        return Response(prom.generate_latest(registry), media_type=prom.CONTENT_TYPE_LATEST)

    return Route(path, metrics, methods=["GET"], name="metrics")


def install(app: Application, config: Observability | None) -> Installation | None:
    """Install ``config`` on a starting app; without one, only the logging context when
    ``configure_logging`` (a root ``ContextFilter``) asks for it."""
    if config is None:
        if not logging_context_wanted():
            return None
        config = Observability(health_path=None, tracing=False)
    return config.install(app)

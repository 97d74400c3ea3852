"""OpenTelemetry spans around handled messages and HTTP requests (the ``otel`` extra).

Imported only by an app started with ``Observability(opentelemetry=True)`` (or a
``tracer_provider``): ``SpanMiddleware`` wraps its handlers when the router compiles
them, like the rest of observability, and nothing here runs otherwise.

Each handling is a span whose parent is the incoming ``traceparent``, and the message
scope (``current_message()``) takes its ids from that span, so log lines and the
``traceparent`` clients add name what the exporter sees. Attributes follow the OTel
messaging semantic conventions (https://opentelemetry.io/docs/specs/semconv/messaging/).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TraceState,
    get_current_span,
    set_span_in_context,
)
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from framework.messaging.context import MessageContext
from framework.messaging.router import Invoke, MessageHandler
from framework.messaging.streams import is_stream, iterate
from framework.observability._context import (
    CURRENT,
    TRACEPARENT,
    TRACESTATE,
    MessageScope,
    _header,
    parse_traceparent,
)

INSTRUMENTATION = "framework"
"""The instrumentation scope name spans are created under."""

MAX_ROUTES = 1000
"""HTTP endpoints whose route template is remembered (one per route of the app)."""


def tracer(provider: Any = None) -> Tracer:
    """The framework's tracer from ``provider``, or from the global provider (a proxy
    that follows ``trace.set_tracer_provider`` called later)."""
    if provider is None:
        return trace.get_tracer(INSTRUMENTATION)
    found: Tracer = provider.get_tracer(INSTRUMENTATION)
    return found


def _usable(context: SpanContext, parent_id: int) -> bool:
    # Without an SDK, the API's tracer hands back the parent's context as the "new"
    # span: then the framework's own ids are used instead.
    return context.is_valid and context.span_id != parent_id


class SpanScope(MessageScope):
    """A message scope whose trace ids are those of an OpenTelemetry span.

    ``traceparent`` (what clients add to outgoing messages) is the *current* span's
    context when it belongs to the same trace (a span the handler opened), else the
    handling's span.
    """

    __slots__ = ("_incoming", "_parent_id", "_span")
    _span: Span
    _parent_id: int
    _incoming: Any

    def __init__(self, context: MessageContext, handler: str | None) -> None:
        super().__init__(context, handler, True)

    def _trace_fields(self) -> tuple[str, str | None, str, str | None] | None:
        try:
            return self._trace
        except AttributeError:
            pass
        own = self._span.get_span_context()
        if not _usable(own, self._parent_id):
            return super()._trace_fields()
        parent_id = self._parent_id
        if not parent_id:
            parent = getattr(self._span, "parent", None)  # an SDK span's SpanContext
            parent_id = parent.span_id if parent is not None else 0
        self._trace = (
            f"{own.trace_id:032x}",
            f"{parent_id:016x}" if parent_id else None,
            f"{own.trace_flags:02x}",
            own.trace_state.to_header() or None,
        )
        return self._trace

    @property
    def span_id(self) -> str | None:
        """This handling's span id (16 hex digits)."""
        own = self._span.get_span_context()
        if _usable(own, self._parent_id):
            return f"{own.span_id:016x}"
        return super().span_id

    @property
    def traceparent(self) -> str | None:
        """The ``traceparent`` of the current span (this handling's or a child of it)."""
        own = self._span.get_span_context()
        current = get_current_span().get_span_context()
        if current.trace_id == own.trace_id and _usable(current, self._parent_id):
            own = current
        elif not _usable(own, self._parent_id):
            return super().traceparent
        return f"00-{own.trace_id:032x}-{own.span_id:016x}-{own.trace_flags:02x}"


def _parent(headers: Any) -> tuple[Context | None, int, Any]:
    """The parent context of a handling: ``(context, parent span id, raw traceparent)``.

    The incoming ``traceparent`` when there is a valid one; but a handler called inside
    an HTTP request with that request's own headers (an SSE ``POST``) is a child of the
    request's span. ``None`` (no valid ``traceparent``): the current context, as OTel's
    propagators do, which outside handlers starts a new trace.
    """
    value = _header(headers, TRACEPARENT)
    outer = CURRENT.get()
    if isinstance(outer, SpanScope) and outer.handler is None and outer._incoming == value:
        return set_span_in_context(outer._span), outer._span.get_span_context().span_id, value
    parsed = parse_traceparent(value)
    if parsed is None:
        return None, 0, value
    state = _header(headers, TRACESTATE)
    if isinstance(state, bytes):
        state = state.decode("latin-1")
    span_id = int(parsed[1], 16)
    remote = SpanContext(
        int(parsed[0], 16),
        span_id,
        is_remote=True,
        trace_flags=TraceFlags(int(parsed[2], 16)),
        trace_state=TraceState.from_header([state]) if isinstance(state, str) else None,
    )
    return set_span_in_context(NonRecordingSpan(remote)), span_id, value


def _failed(span: Span, exc: BaseException) -> None:
    if isinstance(exc, Exception):
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    else:  # cancelled: a request that timed out, or the app stopping mid-handler
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


class _SpanStream:
    """A streamed reply: items are produced inside the handling's span, which ends when
    the stream does (or is closed)."""

    __slots__ = ("_done", "_inner", "_scope")

    def __init__(self, inner: Any, scope: SpanScope) -> None:
        self._inner: AsyncIterator[Any] = iterate(inner)
        self._scope = scope
        self._done = False

    def __aiter__(self) -> _SpanStream:
        return self

    async def __anext__(self) -> Any:
        token = CURRENT.set(self._scope)
        otel = attach(set_span_in_context(self._scope._span))
        try:
            return await anext(self._inner)
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        finally:
            detach(otel)
            CURRENT.reset(token)

    def _end(self, exc: BaseException | None) -> None:
        if not self._done:
            self._done = True
            if exc is not None:
                _failed(self._scope._span, exc)
            self._scope._span.end()

    async def aclose(self) -> None:
        """Close the handler's iterator and end the span."""
        self._end(None)
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()


class SpanMiddleware:
    """A span per handler call (outside the metrics, if any): a ``HandlerMiddleware``."""

    needs_context = True

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def wrap(self, handler: MessageHandler, call: Invoke) -> Invoke:
        return _spanned(handler, call, self.tracer)


def _spanned(handler: MessageHandler, call: Invoke, tracer: Tracer) -> Invoke:
    name = handler.name
    request = handler.kind == "message"  # only requests reply, or stream
    kind = SpanKind.SERVER if request else SpanKind.CONSUMER
    span_name = f"process {handler.pattern}"
    static: dict[str, Any] = {
        "framework.handler": name,
        "messaging.operation": "process",  # the name before semconv 1.26
        "messaging.operation.type": "process",
    }

    async def invoke(raw: Any, ctx: Any) -> Any:
        if ctx is None:  # a transport that ignores needs_context
            ctx = MessageContext(handler.pattern, "unknown")
        scope = SpanScope(ctx, name)
        parent, scope._parent_id, _ = _parent(ctx.headers)
        attributes = static.copy()
        attributes["messaging.system"] = ctx.transport
        attributes["messaging.destination.name"] = ctx.pattern
        if request:  # events carry no correlation id
            correlation = scope.correlation_id
            if correlation is not None:
                attributes["messaging.message.conversation_id"] = correlation
        partition = getattr(ctx, "partition", None)  # Kafka
        if partition is not None:
            attributes["messaging.destination.partition.id"] = str(partition)
            attributes["messaging.kafka.offset"] = ctx.offset
        span = scope._span = tracer.start_span(span_name, parent, kind, attributes)
        token = CURRENT.set(scope)
        otel = attach(set_span_in_context(span))
        try:
            result = await call(raw, ctx)
        except BaseException as exc:
            _failed(span, exc)
            span.end()
            raise
        finally:
            detach(otel)
            CURRENT.reset(token)
        if request and is_stream(result):
            return _SpanStream(result, scope)
        span.end()
        return result

    return invoke


class SpanHttpMiddleware:
    """A SERVER span per HTTP request (OTel HTTP semantic conventions), which is also the
    request's message scope, so messages sent from routes are its children."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer
        self._routes: dict[Any, str | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request = SpanScope(MessageContext(scope["path"], "http", headers), None)
        parent, request._parent_id, request._incoming = _parent(headers)
        method = scope["method"]
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        span = request._span = self.tracer.start_span(method, parent, SpanKind.SERVER, attributes)
        status, failed = 0, False

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = CURRENT.set(request)
        otel = attach(set_span_in_context(span))
        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            _failed(span, exc)
            failed = True
            raise
        finally:
            detach(otel)
            CURRENT.reset(token)
            self._finish(span, scope, method, status, failed)

    def _finish(self, span: Span, scope: Scope, method: str, status: int, failed: bool) -> None:
        route = self._route(scope)
        if route is not None:
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
        if status:
            span.set_attribute("http.response.status_code", status)
            if status >= 500 and not failed:
                span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _route(self, scope: Scope) -> str | None:
        """The matched route's path template (``/orders/{id}``): low-cardinality names."""
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return None
        try:
            return self._routes[endpoint]
        except KeyError:
            pass
        routes = getattr(scope.get("app"), "routes", ())
        found = next((r.path for r in routes if getattr(r, "endpoint", None) is endpoint), None)
        if len(self._routes) < MAX_ROUTES:
            self._routes[endpoint] = found
        return found

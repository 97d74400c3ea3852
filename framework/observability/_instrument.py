"""The handler middleware of observability: message scope for logs and traces, metrics.

Only an app with observability on runs any of this; without it the router compiles no
wrapper and no per-message code is added. A wrapped handler asks the transports for a
context (``needs_context``), since the pattern, transport and headers of the message are
what the scope and the metric labels are made of.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from time import perf_counter
from typing import Any

from framework.messaging.context import MessageContext
from framework.messaging.router import Invoke, MessageHandler
from framework.messaging.streams import is_stream, iterate
from framework.observability._context import CURRENT, MessageScope
from framework.observability._metrics import HandlerSeries, MessageMetrics, Series


class _ScopedStream:
    """A streamed reply whose items are produced inside the message's scope, and which
    counts as handled or failed when it ends."""

    __slots__ = ("_done", "_inner", "_scope", "_series")

    def __init__(self, inner: Any, scope: MessageScope | None, series: Series | None) -> None:
        self._inner: AsyncIterator[Any] = iterate(inner)
        self._scope = scope
        self._series = series
        self._done = False

    def __aiter__(self) -> _ScopedStream:
        return self

    async def __anext__(self) -> Any:
        token = CURRENT.set(self._scope) if self._scope is not None else None
        try:
            return await anext(self._inner)
        except StopAsyncIteration:
            self._finish(ok=True)
            raise
        except Exception:
            self._finish(ok=False)
            raise
        finally:
            if token is not None:
                CURRENT.reset(token)

    def _finish(self, *, ok: bool) -> None:
        if self._done:
            return
        self._done = True
        if self._series is not None:
            if ok:
                self._series.handled += 1
            else:
                self._series.failed += 1

    async def aclose(self) -> None:
        """Close the handler's iterator (a client went away or the server stops); a
        stream closed early counts as handled."""
        self._finish(ok=True)
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()


def _fallback(handler: MessageHandler) -> MessageContext:
    """A context for transports that ignore ``needs_context``: what the handler knows."""
    return MessageContext(handler.pattern, "unknown")


def _scoped(handler: MessageHandler, call: Invoke, tracing: bool, streams: bool) -> Invoke:
    name = handler.name

    async def invoke(raw: Any, ctx: Any) -> Any:
        scope = MessageScope(ctx or _fallback(handler), name, tracing)
        token = CURRENT.set(scope)
        try:
            result = await call(raw, ctx)
        finally:
            CURRENT.reset(token)
        if streams and is_stream(result):
            return _ScopedStream(result, scope, None)
        return result

    return invoke


def _measured(handler: MessageHandler, call: Invoke, table: HandlerSeries, streams: bool) -> Invoke:
    by_transport, create = table.by_transport, table.get

    async def invoke(raw: Any, ctx: Any) -> Any:
        transport = ctx.transport if ctx is not None else None
        series = by_transport.get(transport) or create(transport)
        start = perf_counter()
        try:
            result = await call(raw, ctx)
        except Exception:
            series.error(perf_counter() - start)
            raise
        if streams and is_stream(result):
            return _ScopedStream(result, None, series)
        series.ok(perf_counter() - start)
        return result

    return invoke


def _scoped_measured(
    handler: MessageHandler, call: Invoke, tracing: bool, table: HandlerSeries, streams: bool
) -> Invoke:
    name = handler.name
    by_transport, create = table.by_transport, table.get

    async def invoke(raw: Any, ctx: Any) -> Any:
        if ctx is None:
            ctx = _fallback(handler)
        scope = MessageScope(ctx, name, tracing)
        transport = ctx.transport
        series = by_transport.get(transport) or create(transport)
        token = CURRENT.set(scope)
        start = perf_counter()
        try:
            result = await call(raw, ctx)
        except Exception:
            series.error(perf_counter() - start)
            raise
        finally:
            CURRENT.reset(token)
        if streams and is_stream(result):
            return _ScopedStream(result, scope, series)
        series.ok(perf_counter() - start)
        return result

    return invoke


class InstrumentMiddleware:
    """Sets the message scope (``scoped``: logging context; ``tracing``: trace ids) and
    counts metrics (``metrics``) around every handler; wraps nothing when neither is
    wanted.

    A ``HandlerMiddleware`` (``framework.messaging.router``), compiled by the router.
    """

    needs_context = True

    def __init__(self, *, scoped: bool, tracing: bool, metrics: MessageMetrics | None) -> None:
        self.scoped = scoped
        self.tracing = tracing
        self.metrics = metrics

    def wrap(self, handler: MessageHandler, call: Invoke) -> Invoke:
        # Only request handlers reply with streams (an event's result is dropped).
        streams = handler.kind == "message"
        if self.metrics is not None:
            table = self.metrics.series(handler)
            if self.scoped:
                return _scoped_measured(handler, call, self.tracing, table, streams)
            return _measured(handler, call, table, streams)
        if self.scoped:
            return _scoped(handler, call, self.tracing, streams)
        return call

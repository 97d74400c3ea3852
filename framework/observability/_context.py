"""The message in hand: one contextvar, read by log lines and by clients for trace context.

Nothing here runs unless observability is on: the router's handlers are wrapped at
start-up to set ``CURRENT`` (see ``_instrument.py``), and clients only pay one
``ContextVar.get`` per send to learn that nothing is set.

Trace context follows W3C Trace Context (https://www.w3.org/TR/trace-context/): a
``traceparent`` header ``00-<trace id>-<parent id>-<flags>`` and an optional
``tracestate``. Each handled message is a span: it keeps the incoming trace id (or starts
a trace when none came), gets its own span id, and every message it sends carries
``00-<trace id>-<its span id>-<flags>``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from framework.messaging.context import MessageContext

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MAX_TRACESTATE = 512
"""Characters of an incoming ``tracestate`` carried on; a longer one is dropped (the
W3C limit is 32 list members, which fits well below this in practice)."""

CORRELATION_HEADERS = ("kafka_correlationId", "x-correlation-id", "x-request-id")
"""Headers a correlation id is read from, in this order (then a WebSocket frame's id)."""

_HEX = frozenset("0123456789abcdef")
_random = random.Random()


def _hex(value: str, length: int) -> bool:
    return len(value) == length and set(value) <= _HEX and value != "0" * length


def parse_traceparent(value: Any) -> tuple[str, str, str] | None:
    """``(trace id, parent id, flags)`` of a valid ``traceparent``, else ``None``.

    Follows the W3C rules: lowercase hex, no all-zero ids, version ``ff`` is invalid,
    and a future version may append fields after the four it knows.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or len(value) < 55:
        return None
    version, trace_id, parent_id, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    if set(version) - _HEX or version == "ff" or set(flags) - _HEX:
        return None
    if len(value) > 55 and (version == "00" or value[55] != "-"):
        return None
    if not _hex(trace_id, 32) or not _hex(parent_id, 16):
        return None
    return trace_id, parent_id, flags


def new_trace_id() -> str:
    """A random 128-bit trace id as 32 hex digits."""
    return f"{_random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    """A random 64-bit span id as 16 hex digits."""
    return f"{_random.getrandbits(64) or 1:016x}"


def _header(headers: Any, name: str) -> Any:
    if not headers:
        return None
    try:
        return headers.get(name)
    except Exception:  # a transport's own header object without .get
        return None


class MessageScope:
    """What is known about the message being handled (or the HTTP request served).

    Read it with ``framework.observability.current_message()``. Fields that cost
    something to find (correlation id, trace ids) are computed on first use.

    Attributes:
        context: the ``MessageContext`` of the message (for HTTP requests, one with the
            path as pattern, transport ``"http"`` and the request headers).
        handler: the handler, as ``Controller.method`` (``None`` for HTTP requests).
    """

    # Three slots set per message; the others stay unset until first asked for.
    __slots__ = ("_correlation", "_span_id", "_trace", "_tracing", "context", "handler")
    _correlation: str | None
    _span_id: str
    _trace: tuple[str, str | None, str, str | None]

    def __init__(self, context: MessageContext, handler: str | None, tracing: bool) -> None:
        self.context = context
        self.handler = handler
        self._tracing = tracing

    @property
    def pattern(self) -> str:
        """The pattern the message was sent to (the path, for HTTP requests)."""
        return self.context.pattern

    @property
    def transport(self) -> str:
        """The transport's name ("memory", "kafka", "ws", "sse", "http")."""
        return self.context.transport

    @property
    def correlation_id(self) -> str | None:
        """The request's correlation id: a ``kafka_correlationId``, ``x-correlation-id``
        or ``x-request-id`` header, or a WebSocket frame's ``id``; ``None`` for events."""
        try:
            return self._correlation
        except AttributeError:
            pass
        headers, found = self.context.headers, None
        for name in CORRELATION_HEADERS:
            found = _header(headers, name)
            if found is not None:
                break
        raw = self.context.raw
        if found is None and raw.__class__ is dict:
            found = raw.get("id")
        if isinstance(found, bytes):
            found = found.decode("utf-8", "replace")
        self._correlation = None if found is None else str(found)
        return self._correlation

    def _trace_fields(self) -> tuple[str, str | None, str, str | None] | None:
        """``(trace id, parent span id, flags, tracestate)``; ``None`` without tracing."""
        if not self._tracing:
            return None
        try:
            return self._trace
        except AttributeError:
            pass
        headers = self.context.headers
        parsed = parse_traceparent(_header(headers, TRACEPARENT))
        if parsed is None:
            # No (valid) incoming context: this message starts a trace, sampled so that
            # services downstream record it too.
            self._trace = (new_trace_id(), None, "01", None)
        else:
            state = _header(headers, TRACESTATE)
            if isinstance(state, bytes):
                state = state.decode("latin-1")
            if not isinstance(state, str) or len(state) > MAX_TRACESTATE:
                state = None
            self._trace = (parsed[0], parsed[1], parsed[2], state)
        return self._trace

    @property
    def trace_id(self) -> str | None:
        """The W3C trace id (32 hex digits), or ``None`` when tracing is off."""
        trace = self._trace_fields()
        return None if trace is None else trace[0]

    @property
    def parent_span_id(self) -> str | None:
        """The span id of the sender (from the incoming ``traceparent``), if any."""
        trace = self._trace_fields()
        return None if trace is None else trace[1]

    @property
    def span_id(self) -> str | None:
        """This handling's own span id (16 hex digits), or ``None`` when tracing is off."""
        if not self._tracing:
            return None
        try:
            return self._span_id
        except AttributeError:
            self._span_id = new_span_id()
            return self._span_id

    @property
    def traceparent(self) -> str | None:
        """The ``traceparent`` that messages sent from here carry."""
        trace = self._trace_fields()
        if trace is None:
            return None
        return f"00-{trace[0]}-{self.span_id}-{trace[2]}"

    @property
    def tracestate(self) -> str | None:
        """The incoming ``tracestate``, carried on unchanged."""
        trace = self._trace_fields()
        return None if trace is None else trace[3]

    def __repr__(self) -> str:
        return (
            f"MessageScope(pattern={self.pattern!r}, transport={self.transport!r}, "
            f"handler={self.handler!r})"
        )


CURRENT: ContextVar[MessageScope | None] = ContextVar("framework_message", default=None)


def current_message() -> MessageScope | None:
    """The message being handled in this task, or ``None`` (outside handlers, or when
    neither logging context nor tracing is on)."""
    return CURRENT.get()


def trace_headers(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """``headers`` plus the current ``traceparent``/``tracestate``, for outgoing messages.

    Clients call this on every send: outside a traced handler it returns ``headers``
    unchanged. A ``traceparent`` the caller set explicitly wins.
    """
    scope = CURRENT.get()
    if scope is None or not scope._tracing:
        return headers
    if headers and TRACEPARENT in headers:
        return headers
    traceparent = scope.traceparent
    assert traceparent is not None
    merged = dict(headers) if headers else {}
    merged[TRACEPARENT] = traceparent
    state = scope.tracestate
    if state:
        merged[TRACESTATE] = state
    return merged

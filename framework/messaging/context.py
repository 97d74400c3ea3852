"""What a handler, guard or filter can know about the message in hand."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

HandlerKind = Literal["message", "event", "http"]


class MessageContext:
    """The inbound message as a handler sees it; transports pass subclasses.

    Built only for handlers that ask for one (a parameter annotated with this class or a
    subclass) or that have guards, interceptors or filters.

    Attributes:
        pattern: the pattern the sender used (the concrete one, not a wildcard).
        transport: the transport's name: "memory", "kafka", "ws", "sse".
        headers: message headers (Kafka headers, WS frame extras); empty when none.
        raw: the transport's own message object (an aiokafka record, a WS frame dict).
    """

    __slots__ = ("headers", "pattern", "raw", "transport")

    def __init__(
        self,
        pattern: str,
        transport: str,
        headers: Mapping[str, Any] | None = None,
        raw: Any = None,
    ) -> None:
        self.pattern = pattern
        self.transport = transport
        self.headers: Mapping[str, Any] = headers if headers is not None else {}
        self.raw = raw

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pattern={self.pattern!r}, transport={self.transport!r})"


class ExecutionContext:
    """What guards, interceptors and filters receive, on every transport and HTTP.

    Attributes:
        kind: "message" (request/reply), "event" or "http".
        transport: the transport's name ("http" for HTTP routes).
        pattern: the message pattern, or the HTTP route path.
        handler: the controller method (the plain function).
        controller: the controller class.
        context: the ``MessageContext`` (messages) or the starlette ``Request`` (HTTP).
        payload: the raw payload before validation (bytes or decoded JSON), or ``None``.
    """

    __slots__ = ("context", "controller", "handler", "kind", "pattern", "payload", "transport")

    def __init__(
        self,
        kind: HandlerKind,
        transport: str,
        pattern: str,
        handler: Callable[..., Any],
        controller: type,
        context: Any,
        payload: Any,
    ) -> None:
        self.kind = kind
        self.transport = transport
        self.pattern = pattern
        self.handler = handler
        self.controller = controller
        self.context = context
        self.payload = payload

    def get_type(self) -> str:
        """``"http"`` or ``"rpc"``, as NestJS's ``ExecutionContext.getType()``."""
        return "http" if self.kind == "http" else "rpc"

    @property
    def headers(self) -> Mapping[str, Any]:
        """Headers of the message or HTTP request."""
        headers: Mapping[str, Any] = getattr(self.context, "headers", {})
        return headers

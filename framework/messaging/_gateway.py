"""``@websocket_gateway`` and ``@subscribe_message``: NestJS's gateway names.

A gateway is a controller whose handlers serve WebSocket clients; it may be listed in a
module's ``controllers`` or ``providers``. ``on_connection(socket)``,
``on_disconnect(socket)`` and ``after_init(transport)`` methods are called by the
WebSocket and Socket.IO transports when present.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from framework.di.hints import capture_locals
from framework.exceptions import ConfigurationError
from framework.messaging._decorators import message_pattern

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

GATEWAY_ATTR = "__framework_gateway__"


@dataclass(frozen=True, slots=True)
class GatewayMeta:
    path: str | None
    namespace: str | None = None


def websocket_gateway(
    path: str | None = None, *, namespace: str | None = None
) -> Callable[[type[T]], type[T]]:
    """Mark a class as a gateway: on WebSocket it serves ``path`` (default: the
    transport's path), on Socket.IO the namespace ``namespace`` (default ``"/"``)."""
    if namespace is not None and not namespace.startswith("/"):
        raise ConfigurationError(f"Socket.IO namespace {namespace!r} must start with '/'")

    def decorate(cls: type[T]) -> type[T]:
        setattr(cls, GATEWAY_ATTR, GatewayMeta(path, namespace))
        capture_locals(cls)
        return cls

    return decorate


def subscribe_message(event: str) -> Callable[[F], F]:
    """A request/reply handler for ``event`` on WebSocket (``{"event": ..., "data": ...}``)
    and Socket.IO (the event ``event``, its ack the reply)."""
    return message_pattern(event, transports=["ws", "socketio"])


def gateway_meta(cls: Any) -> GatewayMeta | None:
    meta = getattr(cls, GATEWAY_ATTR, None)
    return meta if isinstance(meta, GatewayMeta) else None

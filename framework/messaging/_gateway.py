"""``@websocket_gateway`` and ``@subscribe_message``: NestJS's gateway names.

A gateway is a controller whose handlers serve WebSocket clients; it may be listed in a
module's ``controllers`` or ``providers``. ``on_connection(socket)``,
``on_disconnect(socket)`` and ``after_init(transport)`` methods are called by the
WebSocket transport when present.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from framework.di.hints import capture_locals
from framework.messaging._decorators import message_pattern

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

GATEWAY_ATTR = "__framework_gateway__"


@dataclass(frozen=True, slots=True)
class GatewayMeta:
    path: str | None


def websocket_gateway(path: str | None = None) -> Callable[[type[T]], type[T]]:
    """Mark a class as a WebSocket gateway; ``path`` defaults to the transport's path."""

    def decorate(cls: type[T]) -> type[T]:
        setattr(cls, GATEWAY_ATTR, GatewayMeta(path))
        capture_locals(cls)
        return cls

    return decorate


def subscribe_message(event: str) -> Callable[[F], F]:
    """A WebSocket-only request/reply handler for ``event`` (``{"event": ..., "data": ...}``)."""
    return message_pattern(event, transports=["ws"])


def gateway_meta(cls: Any) -> GatewayMeta | None:
    meta = getattr(cls, GATEWAY_ATTR, None)
    return meta if isinstance(meta, GatewayMeta) else None

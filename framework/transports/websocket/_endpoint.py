"""Which handlers (a dispatcher) and gateway hooks serve a WebSocket path.

A gateway (``@websocket_gateway(path=...)``) serves its own handlers on its path; the
handlers of plain controllers serve on the transport's path. ``on_connection``,
``on_disconnect`` and ``after_init`` are called on the gateways of the connection's path.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Any

from framework.messaging._gateway import gateway_meta
from framework.messaging.dispatch import Dispatcher, Inbound
from framework.messaging.router import MessageHandler, Router
from framework.transports.websocket.context import WsContext

logger = logging.getLogger("framework.websocket")

TRANSPORT = "ws"


class Endpoint:
    """One served path: the dispatcher of its handlers and its gateway instances.

    A path serves its gateways' handlers; the transport's own path also serves the
    handlers of plain controllers.
    """

    __slots__ = ("classes", "dispatcher", "gateways", "is_default", "path")

    def __init__(
        self,
        path: str,
        router: Router,
        classes: frozenset[type],
        gateways: list[Any],
        is_default: bool,
    ) -> None:
        self.path = path
        self.classes = classes
        self.gateways = gateways
        self.is_default = is_default
        # An inbound-stream handler gets one stream per connection.
        self.dispatcher = Dispatcher(
            router, TRANSPORT, context=_context, allows=self._allows, stream_key=_connection
        )

    def _allows(self, handler: MessageHandler) -> bool:
        if gateway_meta(handler.controller) is None:
            return self.is_default
        return handler.controller in self.classes


def _connection(inbound: Inbound) -> Any:
    return inbound.source


def _context(inbound: Inbound) -> WsContext:
    return WsContext(inbound.pattern, inbound.headers, inbound.raw, inbound.source)


def gateway_instances(host: Any) -> list[tuple[type, Any]]:
    """``(class, singleton or None)`` for every gateway the app's container holds."""
    try:
        container = host.container
    except Exception:
        # A host without a container (e.g. ``describe()``'s probe) has no instances.
        return []
    found: list[tuple[type, Any]] = []
    for rec in container.controllers():
        cls = rec.provider.use_class
        if cls is not None and gateway_meta(cls) is not None:
            instance = getattr(rec, "instance", None)
            if not isinstance(instance, cls):
                logger.warning(
                    "Gateway %s is not a singleton: its connection hooks will not be called",
                    cls.__qualname__,
                )
                instance = None
            found.append((cls, instance))
    return found


def build_endpoints(default_path: str, router: Router, host: Any) -> dict[str, Endpoint]:
    """One ``Endpoint`` per served path."""
    gateways: dict[type, Any] = dict(gateway_instances(host))
    for handler in router.handlers:
        if handler.serves(TRANSPORT) and gateway_meta(handler.controller) is not None:
            gateways.setdefault(handler.controller, None)
    by_path: dict[str, list[tuple[type, Any]]] = {default_path: []}
    for cls, instance in gateways.items():
        meta = gateway_meta(cls)
        assert meta is not None
        by_path.setdefault(meta.path or default_path, []).append((cls, instance))
    return {
        path: Endpoint(
            path,
            router,
            frozenset(cls for cls, _ in members),
            [instance for _, instance in members if instance is not None],
            path == default_path,
        )
        for path, members in by_path.items()
    }


async def call_hooks(instances: Iterable[Any], name: str, arg: Any) -> None:
    """Call ``name(arg)`` on each instance that defines it; errors propagate."""
    for instance in instances:
        hook = getattr(instance, name, None)
        if hook is None:
            continue
        result = hook(arg)
        if inspect.isawaitable(result):
            await result

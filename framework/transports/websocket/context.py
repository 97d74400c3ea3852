"""What WebSocket handlers can ask for: the socket in hand, and a reply with its own
event name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from framework.messaging.context import MessageContext
from framework.messaging.responses import WsResponse
from framework.transports.websocket._socket import WsSocket


class WsContext(MessageContext):
    """The ``MessageContext`` of a WebSocket frame; annotate a handler parameter with it.

    Attributes:
        socket: the client that sent the frame (``join``/``leave`` rooms, ``emit`` to it,
            read ``socket.data`` set by a guard or ``authenticate``).
        raw: the decoded frame (a dict with ``event``, ``data``, ``id``...).
    """

    __slots__ = ("socket",)

    def __init__(
        self,
        pattern: str,
        headers: Mapping[str, Any] | None,
        raw: Any,
        socket: WsSocket,
    ) -> None:
        super().__init__(pattern, "ws", headers, raw)
        self.socket = socket


__all__ = ["WsContext", "WsResponse"]

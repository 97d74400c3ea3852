"""Reply values with a meaning of their own on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WsResponse:
    """Return this from a handler to reply under another event name (NestJS's
    ``WsResponse``): ``{"event": event, "data": data}`` plus the request's id.

    Connection transports (WebSocket, Socket.IO) send the reply as ``event``; the others
    (memory, Kafka, SSE ``POST``) reply with ``data``.
    """

    event: str
    data: Any

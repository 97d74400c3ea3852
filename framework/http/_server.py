"""The app's HTTP server protocol: uvicorn's, with a deadline for request headers.

uvicorn holds a connection whose request headers never finish (a slowloris, or a
WebSocket handshake left half-sent) for as long as the client likes: about a thousand
of them exhaust a 1,024 file-descriptor limit and lock every other client out. This
protocol closes a connection that has not sent a complete request head within
``header_timeout`` seconds of connecting or of its previous response; a WebSocket
upgrade must also be accepted or refused by the app within that time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from framework.http._limits import HEADER_TIMEOUT

TIMEOUT_ATTR = "framework_header_timeout"
"""Where ``Application.server`` records its ``header_timeout`` on the uvicorn ``Config``."""

_Base: Any = AutoHTTPProtocol  # httptools when installed, else h11 (as uvicorn picks)


class HeaderTimeoutProtocol(_Base):  # type: ignore[misc]
    """uvicorn's HTTP protocol (the ``http`` option of ``uvicorn.Config``)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout: float | None = getattr(config, TIMEOUT_ATTR, HEADER_TIMEOUT)
        self._header_timer: asyncio.TimerHandle | None = None
        self._armed_cycle: Any = None

    def _arm(self) -> None:
        # A request's head is complete once uvicorn made a cycle for it: a cycle other
        # than the one seen when arming means the client did send one in time.
        if self._header_timeout is None:
            return
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._armed_cycle = self.cycle
        self._header_timer = self.loop.call_later(self._header_timeout, self._headers_due)

    def _headers_due(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        current = transport.get_protocol()
        if current is self:
            if self.cycle is self._armed_cycle:
                transport.close()
        elif isinstance(current, WebSocketsSansIOProtocol) and not current.handshake_complete:
            transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

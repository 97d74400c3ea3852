"""The app's port on picows: a uvicorn WebSocket protocol (its ``ws=`` option).

uvicorn parses the HTTP request; on an upgrade it makes the ``ws`` protocol class, gives
it the transport and the request head, and switches the connection to it. The class made
here reads the head: a path one of the transports' ``Route``s serves (the WebSocket
transport's paths, Socket.IO's Engine.IO path) is admitted and switched to picows, as on
the standalone server (``_picows.UpgradeProtocol``), skipping the ASGI layer; any other
path (a starlette WebSocket route) goes to uvicorn's ``websockets-sansio`` protocol (with
the framework's flow control) and the app, as before.

Serving the app with ``uvicorn module:app`` directly does not install this class: the
transports' ASGI endpoints serve their paths then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from framework.http._limits import HEADER_TIMEOUT
from framework.http._server import TIMEOUT_ATTR
from framework.transports.websocket._picows import Route, UpgradeProtocol


def routes_of(transports: Sequence[Any]) -> list[Route]:
    """The picows routes the app's transports serve (``Transport.upgrade_routes``)."""
    return [route for transport in transports for route in transport.upgrade_routes()]


def protocol_class(routes: Sequence[Route]) -> type[asyncio.Protocol]:
    """The ``ws=`` protocol class for uvicorn that serves ``routes`` on picows."""
    from framework.transports.websocket._flow import FlowControlledProtocol

    served = tuple(routes)

    class PicowsUpgrade(UpgradeProtocol):
        def __init__(
            self,
            config: Any,
            server_state: Any,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            def fallback() -> asyncio.Protocol:
                return FlowControlledProtocol(config, server_state, app_state, _loop)

            # The app server's header timeout bounds the whole handshake, as uvicorn's
            # protocol has it (``framework.http._server``).
            timeout = getattr(config, TIMEOUT_ATTR, HEADER_TIMEOUT)
            super().__init__(served, fallback, timeout)

    return PicowsUpgrade

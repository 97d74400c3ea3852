"""The app's port on picows: a uvicorn WebSocket protocol (its ``ws=`` option).

uvicorn parses the HTTP request; on an upgrade it makes the ``ws`` protocol class, gives
it the transport and the request head, and switches the connection to it. The class made
here reads the head: a path the transport serves is admitted and switched to picows, as
on the standalone server (``_picows.UpgradeProtocol``), skipping the ASGI layer; any
other path (another transport's or a starlette WebSocket route) goes to uvicorn's
``websockets-sansio`` protocol (with the framework's flow control) and the app, as before.

Serving the app with ``uvicorn module:app`` directly does not install this class: the
transport's ASGI endpoint (``_asgi.py``) serves its paths then.
"""

from __future__ import annotations

import asyncio
from typing import Any

from framework.transports.websocket._picows import PicowsServer, UpgradeProtocol


def protocol_class(server: PicowsServer) -> type[asyncio.Protocol]:
    """The ``ws=`` protocol class for uvicorn that serves ``server``'s paths."""
    from framework.transports.websocket._flow import FlowControlledProtocol

    class PicowsUpgrade(UpgradeProtocol):
        per_process = True
        """Holds this process's transport: ``framework run --workers`` cannot use it."""

        def __init__(
            self,
            config: Any,
            server_state: Any,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            def fallback() -> asyncio.Protocol:
                return FlowControlledProtocol(config, server_state, app_state, _loop)

            super().__init__(server, fallback)

    return PicowsUpgrade

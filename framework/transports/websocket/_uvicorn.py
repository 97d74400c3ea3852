"""The app's port on picows: a uvicorn WebSocket protocol (its ``ws=`` option).

uvicorn parses the HTTP request; on an upgrade it makes the ``ws`` protocol class, gives
it the transport and the request head, and switches the connection to it. The classes
here read the head: a path one of the transports' ``Route``s serves (the WebSocket
transport's paths, Socket.IO's Engine.IO path) is admitted and switched to picows, as on
the standalone server (``_picows.UpgradeProtocol``), skipping the ASGI layer; any other
path (a starlette WebSocket route) goes to uvicorn's ``websockets-sansio`` protocol (with
the framework's flow control) and the app, as before.

``Application.server`` makes a class holding its app's routes (``protocol_class``).
``framework run --workers``/``--reload`` cannot hand a class to uvicorn's other
processes, so it names ``ProcessUpgrade`` by import string: each process imports it and
serves the routes of the app it built itself (``serve_routes``, from the CLI's app
factory). Serving the app with ``uvicorn module:app`` directly installs neither: the
transports' ASGI endpoints serve their paths then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from framework.http._limits import HEADER_TIMEOUT
from framework.http._server import TIMEOUT_ATTR
from framework.transports.websocket._picows import Route, UpgradeProtocol

PROCESS_UPGRADE = f"{__name__}:ProcessUpgrade"
"""``ws=`` for uvicorn processes that build their own app (``serve_routes``)."""


def routes_of(transports: Sequence[Any]) -> list[Route]:
    """The picows routes the app's transports serve (``Transport.upgrade_routes``)."""
    return [route for transport in transports for route in transport.upgrade_routes()]


class _AppPortUpgrade(UpgradeProtocol):
    """uvicorn's ``ws`` protocol: ``routes`` on picows, other paths on uvicorn's own."""

    routes: ClassVar[tuple[Route, ...]] = ()

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        from framework.transports.websocket._flow import FlowControlledProtocol

        def fallback() -> asyncio.Protocol:
            return FlowControlledProtocol(config, server_state, app_state, _loop)

        # The app server's header timeout bounds the whole handshake, as uvicorn's
        # protocol has it (``framework.http._server``).
        timeout = getattr(config, TIMEOUT_ATTR, HEADER_TIMEOUT)
        super().__init__(self.routes, fallback, timeout)


def protocol_class(routes: Sequence[Route]) -> type[asyncio.Protocol]:
    """The ``ws=`` protocol class for uvicorn that serves ``routes`` on picows."""
    return type("PicowsUpgrade", (_AppPortUpgrade,), {"routes": tuple(routes)})


class ProcessUpgrade(_AppPortUpgrade):
    """The routes of the app this process built (``serve_routes``); until then, none."""


def serve_routes(routes: Sequence[Route]) -> None:
    """Serve ``routes`` on ``ProcessUpgrade`` in this process (the CLI's app factory)."""
    ProcessUpgrade.routes = tuple(routes)

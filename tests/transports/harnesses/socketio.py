"""Contract harness for the Socket.IO transport: the app under a real uvicorn server on
a free 127.0.0.1 port, a ``SocketIoClient`` (python-socketio underneath) talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from framework import create_app
from framework.transports.socketio import SocketIoClient, SocketIoTransport
from tests.transports.harnesses.memory import Served
from tests.transports.harnesses.websocket import uvicorn_running

NAME = "socketio"
CARRIES_HEADERS = False
"""Socket.IO events have no headers (documented in docs/transports/socketio.md)."""


@asynccontextmanager
async def serve(root_module: Any, **transport_options: Any) -> AsyncIterator[Served]:
    app = create_app(root_module, transports=[SocketIoTransport(**transport_options)])
    async with (
        uvicorn_running(app) as port,
        SocketIoClient(f"http://127.0.0.1:{port}") as client,
    ):
        yield Served(app, client, NAME)

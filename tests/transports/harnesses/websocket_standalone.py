"""Contract harness for the WebSocket transport on its own ``websockets`` server
(``WebSocketTransport(port=0)``), beside the app-port harness in ``websocket.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from framework import create_app
from framework.transports.websocket import WebSocketClient, WebSocketTransport
from tests.transports.harnesses.memory import Served

NAME = "ws-standalone"


@asynccontextmanager
async def serve(root_module: Any, **transport_options: Any) -> AsyncIterator[Served]:
    """Start ``root_module`` with a standalone ``WebSocketTransport``; yield a client."""
    transport = WebSocketTransport("/ws", port=0, **transport_options)
    # Nested: the port is known only once the app (and its server) started.
    async with create_app(root_module, transports=[transport]) as app:  # noqa: SIM117
        async with WebSocketClient(f"ws://127.0.0.1:{transport.bound_port}/ws") as client:
            yield Served(app, client, "ws")

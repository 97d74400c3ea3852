"""Contract harness for the WebSocket transport: the app under a real uvicorn server on
a free 127.0.0.1 port, a ``WebSocketClient`` talking to it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from framework import Application, create_app
from framework.transports.websocket import WebSocketClient, WebSocketTransport
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.memory import Served

NAME = "ws"


@asynccontextmanager
async def uvicorn_running(app: Application, **uvicorn_options: Any) -> AsyncIterator[int]:
    """Serve ``app`` with ``app.server()`` (uvicorn) on a free port; yields the port.

    Leaving the block shuts the server down as SIGTERM would (drain, then stop).
    """
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only for sockets that say
    # they are TCP, and with it on every small reply can wait ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "on"}
    options.update(uvicorn_options)
    server = app.server("127.0.0.1", port, **options)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20 * TIME_FACTOR):
            while not server.started:
                if task.done():
                    raise RuntimeError("uvicorn exited during start-up; see its log")
                await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        async with asyncio.timeout(30 * TIME_FACTOR):
            await task
        sock.close()


@asynccontextmanager
async def serve(root_module: Any, **transport_options: Any) -> AsyncIterator[Served]:
    """Start ``root_module`` with a ``WebSocketTransport`` on "/ws"; yield a client."""
    app = create_app(root_module, transports=[WebSocketTransport("/ws", **transport_options)])
    async with (
        uvicorn_running(app) as port,
        WebSocketClient(f"ws://127.0.0.1:{port}/ws") as client,
    ):
        yield Served(app, client, "ws")

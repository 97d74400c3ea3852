"""The ASGI endpoint: a WebSocket route on the app's HTTP server (uvicorn).

It only admits the handshake and feeds ASGI messages to the connection's ``Session``;
writes go through an ``AsgiLink``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from framework.transports.websocket._handshake import Handshake
from framework.transports.websocket._links import AsgiLink
from framework.transports.websocket._session import Connections


class AsgiEndpoint:
    """An ASGI app (a class instance, so starlette passes it raw ``receive``/``send``)."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        connections = self.connections
        query = scope.get("query_string", b"").decode("latin-1")
        handshake = Handshake(
            path=scope["path"],
            headers=Headers(scope=scope),
            query=dict(parse_qsl(query, keep_blank_values=True)),
            client=scope.get("client"),
        )
        if not await connections.admit(handshake):
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        task = asyncio.current_task()
        link = AsgiLink(send, task)
        session = connections.session(link, handshake)
        session.socket.reader = task
        code: int | None = None

        def unwrap(message: Any) -> str | bytes | None:
            nonlocal code
            if message["type"] == "websocket.receive":
                text: str | bytes | None = message.get("text")
                return text if text is not None else message.get("bytes") or b""
            code = message.get("code")  # websocket.disconnect
            return None

        try:
            await session.run(receive, unwrap)
        except asyncio.CancelledError:
            # ``AsgiLink.abort`` cancels this task to drop a client that stopped reading:
            # return normally so the server closes the TCP connection.
            if task is None or not link.aborted:
                raise
            task.uncancel()
        finally:
            await session.close(code)

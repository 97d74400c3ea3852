"""The ASGI endpoint: a WebSocket route on the app's HTTP server (uvicorn)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from framework.transports.websocket._endpoint import Endpoint
from framework.transports.websocket._handshake import Handshake
from framework.transports.websocket._links import AsgiLink
from framework.transports.websocket._socket import SocketState, WsSocket

if TYPE_CHECKING:
    from framework.transports.websocket.transport import WebSocketTransport

_OPEN = SocketState.OPEN


class AsgiEndpoint:
    """An ASGI app (a class instance, so starlette passes it raw ``receive``/``send``)."""

    def __init__(self, transport: WebSocketTransport, endpoint: Endpoint) -> None:
        self.transport = transport
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        transport = self.transport
        query = scope.get("query_string", b"").decode("latin-1")
        handshake = Handshake(
            path=scope["path"],
            headers=Headers(scope=scope),
            query=dict(parse_qsl(query, keep_blank_values=True)),
            client=scope.get("client"),
        )
        if not await transport.admit(handshake):
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        task = asyncio.current_task()
        link = AsgiLink(send, task)
        sock = WsSocket(
            transport.hub,
            link,
            path=handshake.path,
            headers=handshake.headers,
            query=handshake.query,
            client=handshake.client,
            data=handshake.data,
        )
        sock.reader = task
        code: int | None = None
        try:
            code = await self._serve(sock, receive, send)
        except asyncio.CancelledError:
            # ``AsgiLink.abort`` cancels this task to drop a client that stopped reading:
            # return normally so the server closes the TCP connection.
            if task is None or not link.aborted:
                raise
            task.uncancel()
        finally:
            await transport.closed(sock, self.endpoint, code)

    async def _serve(self, sock: WsSocket, receive: Receive, send: Send) -> int | None:
        transport = self.transport
        ep = self.endpoint
        disconnect: list[int | None] = []

        async def recv() -> str | bytes | None:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text: str | bytes | None = message.get("text")
                    return text if text is not None else message.get("bytes", b"")
                if kind == "websocket.disconnect":
                    disconnect.append(message.get("code"))
                    return None

        if not await transport.open(sock, ep, recv):
            while not disconnect and await recv() is not None:
                pass
            return disconnect[0] if disconnect else None
        on_frame = transport.on_frame
        too_big = transport.too_big
        limit = transport.max_message_size
        concurrency = transport.max_concurrency
        gate = asyncio.Semaphore(concurrency) if concurrency > 1 else None
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                raw: str | bytes = message.get("text") or message.get("bytes") or b""
                if sock.state is not _OPEN:
                    continue
                if len(raw) * 4 > limit and too_big(raw):
                    transport.close_too_big(sock)
                    continue
                if gate is not None:
                    await gate.acquire()
                    asyncio.get_running_loop().create_task(
                        _release_after(gate, self._handle(sock, raw, send))
                    )
                    continue
                # The hot path, inlined: handle, then write the reply from this task.
                reply = await on_frame(sock, ep, raw)
                if reply is not None and sock.state is _OPEN:
                    try:  # noqa: SIM105 - a with-block per frame costs more
                        await send({"type": "websocket.send", "text": reply.decode()})
                    except (OSError, RuntimeError):
                        pass  # the client left; the next receive() says so
            elif message["type"] == "websocket.disconnect":
                code: int | None = message.get("code")
                return code

    async def _handle(self, sock: WsSocket, raw: str | bytes, send: Send) -> None:
        reply = await self.transport.on_frame(sock, self.endpoint, raw)
        if reply is not None:
            await sock.send_now(reply)


async def _release_after(gate: asyncio.Semaphore, work: Any) -> None:
    try:
        await work
    finally:
        gate.release()

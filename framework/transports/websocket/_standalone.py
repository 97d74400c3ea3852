"""The transport on its own ``websockets`` server (``WebSocketTransport(port=...)``).

No ASGI layer: frames go from the ``websockets`` connection to the dispatcher as bytes
and replies are written as text frames without re-encoding.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from framework.transports.websocket._handshake import Handshake
from framework.transports.websocket._links import WebsocketsLink
from framework.transports.websocket._socket import SocketState, WsSocket

if TYPE_CHECKING:
    from framework.transports.websocket.transport import WebSocketTransport

_OPEN = SocketState.OPEN
WRITE_LIMIT = 64 * 1024
"""Bytes a connection's write buffer may hold before writers wait (back-pressure)."""


async def serve_standalone(transport: WebSocketTransport) -> Server:
    """Start a ``websockets`` server for ``transport`` on its host and port."""
    handshakes: weakref.WeakKeyDictionary[ServerConnection, Handshake] = weakref.WeakKeyDictionary()

    async def process_request(conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path not in transport.endpoints:
            return conn.respond(404, "Not Found\n")
        remote = conn.remote_address
        handshake = Handshake(
            path=url.path,
            headers=request.headers,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            client=(remote[0], remote[1]) if remote else None,
        )
        if not await transport.admit(handshake):
            return conn.respond(403, "Forbidden\n")
        handshakes[conn] = handshake
        return None

    async def handler(conn: ServerConnection) -> None:
        handshake = handshakes.pop(conn)
        ep = transport.endpoints[handshake.path]

        async def _handle(gate: asyncio.Semaphore, sock: WsSocket, raw: bytes) -> None:
            try:
                reply = await transport.on_frame(sock, ep, raw)
                if reply is not None:
                    await sock.send_now(reply)
            finally:
                gate.release()

        link = WebsocketsLink(conn, WRITE_LIMIT)
        sock = WsSocket(
            transport.hub,
            link,
            path=handshake.path,
            headers=handshake.headers,
            query=handshake.query,
            client=handshake.client,
            data=handshake.data,
        )
        sock.reader = asyncio.current_task()

        async def recv() -> bytes | str | None:
            try:
                return await conn.recv(decode=False)
            except ConnectionClosed:
                return None

        try:
            if not await transport.open(sock, ep, recv):
                await conn.wait_closed()
                return
            on_frame = transport.on_frame
            concurrency = transport.max_concurrency
            gate = asyncio.Semaphore(concurrency) if concurrency > 1 else None
            while True:
                try:
                    raw = await conn.recv(decode=False)
                except ConnectionClosed:
                    return
                if sock.state is not _OPEN:
                    continue
                if gate is not None:
                    await gate.acquire()
                    asyncio.get_running_loop().create_task(_handle(gate, sock, raw))
                    continue
                reply = await on_frame(sock, ep, raw)
                if reply is not None and not link.try_write(reply):
                    await sock.send_now(reply)
        finally:
            rcvd = conn.protocol.close_rcvd
            await transport.closed(sock, ep, rcvd.code if rcvd is not None else None)

    return await serve(
        handler,
        transport.host_name,
        transport.port,
        process_request=process_request,
        max_size=transport.max_message_size,
        compression="deflate" if transport.compression else None,
        ping_interval=transport.ping_interval,
        ping_timeout=transport.ping_timeout,
        close_timeout=transport.close_timeout,
        write_limit=WRITE_LIMIT,
    )

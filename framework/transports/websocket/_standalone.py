"""The transport on its own server (``WebSocketTransport(port=...)``).

No ASGI layer: frames go from the connection to its ``Session`` as bytes, and replies
are written as text frames without re-encoding. The frames are read and written by
``picows`` (``_picows.py``) when it is installed and compression is off (picows has no
permessage-deflate), else by a ``websockets`` server (below); the session is the same.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

try:
    import picows  # noqa: F401
except ImportError:  # pragma: no cover - picows is a default dependency on CPython
    HAVE_PICOWS = False
else:
    HAVE_PICOWS = True

from framework.transports.websocket._flow import FlowControlledConnection
from framework.transports.websocket._handshake import Handshake
from framework.transports.websocket._links import WebsocketsLink
from framework.transports.websocket._session import Connections

WRITE_LIMIT = 64 * 1024
"""Bytes a connection's write buffer may hold before writers wait (back-pressure)."""


async def serve_standalone(
    connections: Connections,
    *,
    host: str,
    port: int,
    compression: bool,
    ping_interval: float | None,
    ping_timeout: float | None,
    close_timeout: float,
) -> asyncio.Server | Server:
    """Start a server for ``connections`` on ``host`` and ``port``: picows when it is
    installed and ``compression`` is off, else ``websockets``."""
    if HAVE_PICOWS and not compression:
        from framework.transports.websocket._picows import PicowsServer

        server = PicowsServer(connections, ping_interval=ping_interval, ping_timeout=ping_timeout)
        return await server.start(host, port)
    handshakes: weakref.WeakKeyDictionary[ServerConnection, Handshake] = weakref.WeakKeyDictionary()

    async def process_request(conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path not in connections.endpoints:
            return conn.respond(404, "Not Found\n")
        remote = conn.remote_address
        handshake = Handshake(
            path=url.path,
            headers=request.headers,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            client=(remote[0], remote[1]) if remote else None,
        )
        if not await connections.admit(handshake):
            return conn.respond(403, "Forbidden\n")
        handshakes[conn] = handshake
        return None

    async def handler(conn: ServerConnection) -> None:
        session = connections.session(WebsocketsLink(conn, WRITE_LIMIT), handshakes.pop(conn))
        session.socket.reader = asyncio.current_task()
        try:
            # ``recv`` raises ConnectionClosed once the client has gone: that ends ``run``.
            await session.run(functools.partial(conn.recv, decode=False))
        except ConnectionClosed:
            pass
        finally:
            rcvd = conn.protocol.close_rcvd
            await session.close(rcvd.code if rcvd is not None else None)

    return await serve(
        handler,
        host,
        port,
        process_request=process_request,
        max_size=connections.max_message_size,
        compression="deflate" if compression else None,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        write_limit=WRITE_LIMIT,
        create_connection=FlowControlledConnection,
    )

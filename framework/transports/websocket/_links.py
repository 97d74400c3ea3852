"""Writing to a connection: over ASGI (the app's HTTP port) or a ``websockets`` server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.types import Send
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from framework.http._abort import abort_connection

OPEN = State.OPEN


class AsgiLink:
    """ASGI ``websocket.send``/``websocket.close`` messages.

    Frames travel as ``str`` (text frames: browsers hand binary frames to scripts as
    blobs). ASGI cannot drop a TCP connection, so ``abort`` aborts the server's
    transport where it can reach it (``abort_connection``) and cancels the connection's
    reader task, so the endpoint returns.
    """

    __slots__ = ("_send", "aborted", "task")

    def __init__(self, send: Send, task: asyncio.Task[Any] | None) -> None:
        self._send = send
        self.task = task
        self.aborted = False

    def wire(self, frame: bytes) -> str:
        return frame.decode()

    def try_write(self, frame: Any) -> bool:
        # ASGI has no synchronous send: every frame goes through ``send_wire``.
        return False

    async def send_wire(self, frame: Any) -> bool:
        try:
            await self._send({"type": "websocket.send", "text": frame})
        except (OSError, RuntimeError):
            # The client went away (uvicorn's ClientDisconnected is an OSError) or the
            # connection is already closing.
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def abort(self) -> None:
        abort_connection(self._send)
        task = self.task
        if task is not None and not task.done():
            self.aborted = True
            task.cancel("websocket aborted")


class WebsocketsLink:
    """A ``websockets`` server connection: JSON bytes are sent as text frames as is."""

    __slots__ = ("_limit", "_transport", "_ws")

    def __init__(self, ws: ServerConnection, write_limit: int) -> None:
        self._ws = ws
        self._transport = ws.transport
        self._limit = write_limit

    def wire(self, frame: bytes) -> bytes:
        return frame

    def try_write(self, frame: Any) -> bool:
        """Write now, without a coroutine, while the socket's write buffer is below the
        limit (``broadcast`` is websockets' public synchronous send); ``False`` when
        the caller must wait (``send_wire``) or the connection is not open."""
        ws = self._ws
        if ws.protocol.state is not OPEN or self._transport.get_write_buffer_size() >= self._limit:
            return False
        broadcast((ws,), frame, text=True)
        return True

    async def send_wire(self, frame: Any) -> bool:
        try:
            await self._ws.send(frame, text=True)
        except ConnectionClosed:
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)

    def abort(self) -> None:
        self._ws.transport.abort()

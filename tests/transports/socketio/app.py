"""The app the Socket.IO tests serve, and how they serve it (uvicorn on a free port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel

from framework import (
    Application,
    ExecutionContext,
    RpcException,
    create_app,
    event_pattern,
    injectable,
    module,
    use_guards,
)
from framework.transports.socketio import (
    SioContext,
    SioSocket,
    SocketIoTransport,
    WsResponse,
    subscribe_message,
    websocket_gateway,
)
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running

TIMEOUT = 10 * TIME_FACTOR


class Echo(BaseModel):
    text: str


@injectable()
class Seen:
    """What the handlers and hooks saw, with an event per arrival the tests can await."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()
        self.stream_closed = asyncio.Event()
        self.release = asyncio.Event()

    def add(self, name: str, value: Any) -> None:
        self.items.append((name, value))
        self.changed.set()

    async def wait_for(self, name: str) -> Any:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for seen, value in self.items:
                    if seen == name:
                        return value
                self.changed.clear()
                await self.changed.wait()


@websocket_gateway()
class EchoGateway:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def on_connection(self, socket: SioSocket) -> None:
        self.seen.add("connected", socket.id)

    def on_disconnect(self, socket: SioSocket) -> None:
        self.seen.add("disconnected", socket.id)

    @subscribe_message("echo")
    async def echo(self, msg: Echo) -> dict[str, str]:
        return {"text": msg.text}

    @subscribe_message("sum")
    async def sum(self, numbers: list[int]) -> int:
        return sum(numbers)

    @subscribe_message("shout")
    async def shout(self, msg: Echo) -> WsResponse:
        return WsResponse("shouted", {"text": msg.text.upper()})

    @subscribe_message("nothing")
    async def nothing(self, msg: Echo) -> None:
        return None

    @subscribe_message("boom")
    async def boom(self, msg: Echo) -> None:
        raise RuntimeError("secret detail")

    @subscribe_message("refuse")
    async def refuse(self, msg: Echo) -> None:
        raise RpcException("not today")

    @subscribe_message("wait")
    async def wait(self, msg: Echo) -> str:
        self.seen.add("waiting", msg.text)
        async with asyncio.timeout(TIMEOUT):
            await self.seen.release.wait()
        return msg.text

    @subscribe_message("ask")
    async def ask(self, question: int, ctx: SioContext) -> Any:
        """Asks the client back (a server-to-client ack) and adds one to its answer."""
        answer = await ctx.socket.call("question", question, timeout=TIMEOUT)
        return answer + 1

    @subscribe_message("count")
    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @subscribe_message("forever")
    async def forever(self, n: int) -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.01)
        finally:
            self.seen.stream_closed.set()

    @subscribe_message("join")
    async def join(self, room: str, ctx: SioContext) -> list[str]:
        ctx.socket.join(room)
        return sorted(ctx.socket.rooms - {ctx.socket.id})

    @event_pattern("note", transports=["socketio"])
    async def note(self, msg: Echo) -> None:
        self.seen.add("note", msg.text)


class TokenGuard:
    """A gateway guard that runs at connect (``ctx.pattern == "connect"``) and on every
    event: the ``auth`` payload must carry the token."""

    def can_activate(self, ctx: ExecutionContext) -> bool:
        socket = ctx.context.socket
        if ctx.pattern == "connect":
            if socket.auth.get("token") != "let-me-in":
                raise RpcException("Invalid token")
            socket.data["user"] = "ann"
        return True


@websocket_gateway(namespace="/admin")
@use_guards(TokenGuard)
class AdminGateway:
    @subscribe_message("whoami")
    async def whoami(self, ctx: SioContext) -> str:
        user: str = ctx.socket.data["user"]
        return user


@module(providers=[Seen, EchoGateway, AdminGateway])
class SioModule:
    pass


FRAME_LAYERS: dict[str, dict[str, Any]] = {
    "picows": {},
    "asgi": {"uvicorn": {"ws": "websockets-sansio"}},
}
"""``served`` options for each frame layer under the Engine.IO WebSocket."""


@asynccontextmanager
async def served(
    root: Any = SioModule, *, uvicorn: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[Application, SocketIoTransport, str]]:
    """The app under ``app.server()`` (the Engine.IO WebSocket on picows; with
    ``uvicorn={"ws": ...}`` through ASGI); yields ``(app, transport,
    "http://127.0.0.1:port")``."""
    transport = SocketIoTransport(**options)
    app = create_app(root, transports=[transport])
    async with uvicorn_running(app, **(uvicorn or {})) as port:
        yield app, transport, f"http://127.0.0.1:{port}"

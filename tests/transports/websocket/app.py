"""A small app for the WebSocket tests: a gateway with rooms and hooks, a plain controller,
and helpers to serve it under uvicorn and talk raw frames to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect

from framework import (
    Application,
    ExecutionContext,
    controller,
    create_app,
    event_pattern,
    injectable,
    module,
    use_guards,
)
from framework.transports.websocket import (
    WebSocketTransport,
    WsContext,
    WsResponse,
    WsSocket,
    subscribe_message,
    websocket_gateway,
)
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running

TIMEOUT = 10 * TIME_FACTOR


class Order(BaseModel):
    id: int
    total: float


@injectable()
class Events:
    """What the gateway saw: connections, disconnections, handler progress."""

    def __init__(self) -> None:
        self.connected: list[WsSocket] = []
        self.disconnected: asyncio.Queue[WsSocket] = asyncio.Queue(100)
        self.initialised: list[Any] = []
        self.slow_started = asyncio.Event()
        self.release_slow = asyncio.Event()
        self.ran: list[str] = []


@websocket_gateway()
class ChatGateway:
    def __init__(self, events: Events) -> None:
        self.events = events

    def after_init(self, transport: Any) -> None:
        self.events.initialised.append(transport)

    async def on_connection(self, socket: WsSocket) -> None:
        self.events.connected.append(socket)
        socket.emit("welcome", {"id": socket.id})

    def on_disconnect(self, socket: WsSocket) -> None:
        self.events.disconnected.put_nowait(socket)

    @subscribe_message("join")
    async def join(self, room: str, ctx: WsContext) -> dict[str, Any]:
        ctx.socket.join(room)
        return {"joined": room, "rooms": sorted(ctx.socket.rooms)}

    @subscribe_message("leave")
    async def leave(self, room: str, ctx: WsContext) -> bool:
        ctx.socket.leave(room)
        return True

    @subscribe_message("whoami")
    async def whoami(self, payload: Any, ctx: WsContext) -> dict[str, Any]:
        return {"id": ctx.socket.id, "user": ctx.socket.data.get("user"), "path": ctx.socket.path}

    @subscribe_message("order.check")
    async def check(self, order: Order) -> Order:
        self.events.ran.append("order.check")
        return order

    @subscribe_message("renamed")
    async def renamed(self, payload: Any) -> WsResponse:
        return WsResponse("renamed.reply", payload)

    @subscribe_message("slow")
    async def slow(self, payload: Any) -> str:
        self.events.slow_started.set()
        await self.events.release_slow.wait()
        return "finished"

    @subscribe_message("ticks")
    async def ticks(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @subscribe_message("forever")
    async def forever(self, payload: Any) -> AsyncIterator[int]:
        i = 0
        while True:
            yield i
            i += 1
            await asyncio.sleep(0.01)


class AdminOnly:
    """A guard on a gateway handler: the same pipeline as every transport."""

    def can_activate(self, ctx: ExecutionContext) -> bool:
        return bool(ctx.transport == "ws" and ctx.context.socket.data.get("admin"))


@websocket_gateway(path="/admin")
class AdminGateway:
    def __init__(self, events: Events) -> None:
        self.events = events

    def on_connection(self, socket: WsSocket) -> None:
        socket.data["admin"] = True

    @subscribe_message("admin.stats")
    async def stats(self, payload: Any, ctx: WsContext) -> dict[str, Any]:
        return {"admin": ctx.socket.data.get("admin", False)}

    @subscribe_message("admin.reset")
    @use_guards(AdminOnly)
    async def reset(self, payload: Any) -> str:
        return "reset"

    @subscribe_message("admin.demote")
    async def demote(self, payload: Any, ctx: WsContext) -> bool:
        ctx.socket.data["admin"] = False
        return True


@controller()
class PlainController:
    def __init__(self, events: Events) -> None:
        self.events = events

    @event_pattern("note")
    async def note(self, text: str) -> None:
        self.events.ran.append(f"note:{text}")


@module(controllers=[PlainController], providers=[Events, ChatGateway, AdminGateway])
class ChatModule:
    pass


Serve = Callable[..., AbstractAsyncContextManager[tuple[Application, WebSocketTransport, str]]]
"""``served`` with the module (and mode) bound: what a test's ``serve`` fixture gives."""


@asynccontextmanager
async def served(
    root: Any = ChatModule,
    *,
    mode: str = "asgi",
    uvicorn: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[tuple[Application, WebSocketTransport, str]]:
    """The app under uvicorn (``mode="asgi"``) or on the transport's own server
    (``"standalone"``); yields ``(app, transport, "ws://host:port")``."""
    if mode == "standalone":
        transport = WebSocketTransport("/ws", port=0, **options)
        app = create_app(root, transports=[transport])
        async with app:
            yield app, transport, f"ws://127.0.0.1:{transport.bound_port}"
        return
    transport = WebSocketTransport("/ws", **options)
    app = create_app(root, transports=[transport])
    async with uvicorn_running(app, **(uvicorn or {})) as port:
        yield app, transport, f"ws://127.0.0.1:{port}"


@asynccontextmanager
async def raw_client(url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    """A plain ``websockets`` client (no framework code on the client side)."""
    options.setdefault("compression", None)
    options.setdefault("open_timeout", TIMEOUT)
    async with connect(url, **options) as ws:
        yield ws


async def recv_json(ws: ClientConnection, *, skip: tuple[str, ...] = ("welcome",)) -> Any:
    """The next frame, decoded; frames whose event is in ``skip`` are passed over."""
    while True:
        async with asyncio.timeout(TIMEOUT):
            frame = json.loads(await ws.recv())
        if frame.get("event") not in skip:
            return frame


async def send_json(ws: ClientConnection, frame: Any) -> None:
    await ws.send(json.dumps(frame))

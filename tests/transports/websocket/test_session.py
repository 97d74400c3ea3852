"""A connection's ``Session`` is a state machine that refuses illegal steps, and every
frame it writes goes through the socket's ordered path.

Driven with a recording link and scripted frames (no server): the adapters only feed
``Session.run``, which the protocol tests drive through real servers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from framework import create_app, module
from framework.transports.websocket import (
    WebSocketTransport,
    WsContext,
    subscribe_message,
    websocket_gateway,
)
from framework.transports.websocket._handshake import Handshake
from framework.transports.websocket._session import Session, SessionState


class RecordingLink:
    """Takes every write at once; records it."""

    def __init__(self) -> None:
        self.written: list[Any] = []

    def wire(self, frame: bytes) -> bytes:
        return frame

    def try_write(self, frame: Any) -> bool:
        self.written.append(json.loads(frame))
        return True

    async def send_wire(self, frame: Any) -> bool:
        return self.try_write(frame)

    async def close(self, code: int, reason: str) -> None:
        return None

    def abort(self) -> None:
        return None


@websocket_gateway()
class PushingGateway:
    @subscribe_message("push.then.reply")
    async def push_then_reply(self, n: int, ctx: WsContext) -> str:
        for i in range(n):
            ctx.socket.emit("pushed", i)
        return "done"


@module(providers=[PushingGateway])
class PushingModule:
    pass


def frames(*items: Any) -> Callable[[], Awaitable[Any]]:
    """A ``receive`` that returns each frame, then ``None`` (the client left)."""
    pending = [json.dumps(item) for item in items]

    async def receive() -> Any:
        return pending.pop(0) if pending else None

    return receive


async def new_session(transport: WebSocketTransport, link: RecordingLink) -> Session:
    handshake = Handshake(path="/ws", headers={}, query={}, client=None)
    return transport.connections.session(link, handshake)


async def test_run_handles_frames_in_order_through_the_socket() -> None:
    transport = WebSocketTransport("/ws", port=0)
    async with create_app(PushingModule, transports=[transport]):
        link = RecordingLink()
        session = await new_session(transport, link)
        await session.run(frames({"event": "push.then.reply", "data": 2, "id": 1}))
        assert link.written == [
            {"event": "pushed", "data": 0},
            {"event": "pushed", "data": 1},
            {"event": "push.then.reply", "data": "done", "id": 1},
        ]
        assert session.state is SessionState.OPEN
        await session.close(1000)
        assert session.state is SessionState.CLOSED


async def test_illegal_steps_raise() -> None:
    transport = WebSocketTransport("/ws", port=0)
    async with create_app(PushingModule, transports=[transport]):
        session = await new_session(transport, RecordingLink())
        with pytest.raises(RuntimeError, match="on_frame\\(\\) on a session that is connecting"):
            await session.on_frame("{}")
        assert await session.open(frames())
        with pytest.raises(RuntimeError, match="open\\(\\) on a session that is open"):
            await session.open(frames())
        await session.close(1000)
        with pytest.raises(RuntimeError, match="cannot go from closed to closed"):
            await session.close(1000)
        with pytest.raises(RuntimeError, match="on a session that is closed"):
            await session.on_frame("{}")

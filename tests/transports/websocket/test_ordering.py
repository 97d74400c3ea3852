"""A connection's frames reach the client in the order the server produced them.

Through the user's path: a real server (the app's HTTP port under uvicorn, and the
standalone server), a gateway handler that pushes to its own socket and then replies,
and a plain ``websockets`` client reading the frames.
"""

from __future__ import annotations

from typing import Any

import pytest

from framework import module
from framework.transports.websocket import (
    WsContext,
    subscribe_message,
    websocket_gateway,
)
from tests.transports.websocket.app import raw_client, recv_json, send_json, served

PUSHES = 20
REQUESTS = 50


@websocket_gateway()
class BurstGateway:
    @subscribe_message("burst")
    async def burst(self, n: int, ctx: WsContext) -> str:
        for i in range(n):
            ctx.socket.emit("pushed", i)
        return "replied"


@module(providers=[BurstGateway])
class BurstModule:
    pass


@pytest.mark.parametrize("mode", ["asgi", "standalone"])
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_pushes_made_by_a_handler_arrive_before_its_reply(
    mode: str, concurrency: int
) -> None:
    async with (
        served(BurstModule, mode=mode, max_concurrency=concurrency) as (_, _, url),
        raw_client(url + "/ws") as ws,
    ):
        for request in range(REQUESTS):
            await send_json(ws, {"event": "burst", "data": PUSHES, "id": request})
            frames: list[Any] = [await recv_json(ws) for _ in range(PUSHES + 1)]
            assert frames[:PUSHES] == [{"event": "pushed", "data": i} for i in range(PUSHES)]
            assert frames[PUSHES] == {"event": "burst", "data": "replied", "id": request}

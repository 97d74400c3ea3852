"""What the Engine.IO WebSocket must keep on both frame layers underneath it: picows
(``app.server()``'s default: uvicorn hands the upgrade over) and ASGI (uvicorn's own
WebSocket protocol, as under ``uvicorn module:app``). The other tests here run on the
default; these run on both (the ``serve`` fixture), with a real python-socketio client or
a raw WebSocket, as does ``test_protocol``'s malformed-packet test."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from tests.transports.socketio.app import FRAME_LAYERS, TIMEOUT, Seen, served
from tests.transports.socketio.test_limits import BytesModule, raw_ws
from tests.transports.socketio.test_protocol import client


async def test_the_default_serves_the_websocket_on_picows() -> None:
    # Not a behaviour, but the tests below mean nothing if both modes ran ASGI.
    async with served() as (_, transport, url):
        ws, opened = await raw_ws(url)
        session = transport.engine.sessions[opened["sid"]]
        assert type(session._pipe).__name__ == "PicowsLink"
        await ws.close()
    async with served(**FRAME_LAYERS["asgi"]) as (_, transport, url):
        ws, opened = await raw_ws(url)
        assert type(transport.engine.sessions[opened["sid"]]._pipe).__name__ == "AsgiPipe"
        await ws.close()


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
async def test_events_acks_and_server_calls_over_websocket_and_the_upgrade(
    serve: Any, transports: list[str]
) -> None:
    # max_concurrency=2: the handler's call to the client waits for the client's ack.
    async with serve(max_concurrency=2) as (app, _t, url), client(url, transports) as (sio, _):
        # Acks flow during the upgrade from polling (its 2probe/3probe, the sid) and
        # after it.
        sent = 0
        async with asyncio.timeout(TIMEOUT):
            while sio.transport() != "websocket" or sent < 50:
                reply = await sio.call("echo", {"text": str(sent)}, timeout=TIMEOUT)
                assert reply == {"text": str(sent)}
                sent += 1
        sio.on("question", lambda n: n * 10)
        assert await sio.call("ask", 4, timeout=TIMEOUT) == 41
        await sio.disconnect()
        assert await app.get(Seen).wait_for("disconnected")


async def test_binary_attachments_go_both_ways(serve: Any) -> None:
    async with serve(BytesModule) as (_, _t, url), client(url, ["websocket"]) as (sio, _):
        assert await sio.call("size", b"\x00\xff" * 5000, timeout=TIMEOUT) == 10000


async def test_shutdown_closes_the_websocket_with_1000(serve: Any) -> None:
    async with serve() as (_, _t, url):
        ws, _ = await raw_ws(url)
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000

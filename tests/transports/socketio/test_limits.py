"""Heartbeats, slow clients, binary attachments and shutdown, through real connections
(raw Engine.IO over ``websockets`` and HTTP where the client must misbehave)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import socketio
import websockets

from framework import module
from framework.transports.socketio import subscribe_message, websocket_gateway
from tests.timing import TIME_FACTOR
from tests.transports.socketio.app import TIMEOUT, Seen, served
from tests.transports.socketio.test_protocol import client
from tests.transports.websocket.test_floods import RSS_BOUND_MIB, connect, flood
from tests.transports.websocket.test_hostile import rss_mib


async def raw_ws(url: str) -> Any:
    ws = await websockets.connect(
        url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", compression=None
    )
    async with asyncio.timeout(TIMEOUT):
        opened = json.loads((await ws.recv())[1:])
        await ws.send("40")
        assert (await ws.recv()).startswith("40{")
    return ws, opened


async def test_a_client_that_answers_pings_stays_and_one_that_does_not_is_dropped() -> None:
    async with served(ping_interval=0.1, ping_timeout=0.2) as (_, _t, url):
        quiet, opened = await raw_ws(url)
        assert opened["pingInterval"] == 100 and opened["pingTimeout"] == 200
        polite, _ = await raw_ws(url)
        async with asyncio.timeout(TIMEOUT):
            for _ in range(5):  # five rounds: well past the timeout
                assert await polite.recv() == "2"
                await polite.send("3")
            # The quiet one got a ping, never answered, and was closed.
            assert await quiet.recv() == "2"
            while True:
                try:
                    await quiet.recv()
                except websockets.ConnectionClosed:
                    break
        await polite.send('42["echo",{"text":"alive"}]')
        await polite.send("421" + '["echo",{"text":"alive"}]')
        async with asyncio.timeout(TIMEOUT):
            while (frame := await polite.recv()) == "2":
                await polite.send("3")
            assert frame == '431[{"text":"alive"}]'
        await polite.close()


async def test_a_polling_client_that_stops_reading_is_dropped_and_others_are_not() -> None:
    async with (
        served(send_queue=8, ping_interval=None) as (_, transport, url),
        httpx.AsyncClient(base_url=url) as http,
    ):
        opened = (await http.get("/socket.io/?EIO=4&transport=polling")).text
        sid = json.loads(opened[1:])["sid"]
        base = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
        assert (await http.post(base, content="40")).text == "ok"
        assert (await http.get(base)).text.startswith("40{")
        async with client(url, ["websocket"]) as (reader, inbox):
            # Broadcasts pile up for the polling client that never polls again,
            # while the WebSocket client reads each one.
            for n in range(20):
                transport.broadcast("news", n)
                assert await inbox.next() == ("news", n)
            assert await reader.call("echo", {"text": "fine"}, timeout=TIMEOUT)
        assert sid not in transport.engine.sessions
        gone = await http.get(base)
        assert gone.status_code == 400
        assert gone.json() == {"code": 1, "message": "Session ID unknown"}


@websocket_gateway()
class BytesGateway:
    @subscribe_message("size")
    async def size(self, data: bytes) -> int:
        return len(data)


@module(providers=[BytesGateway])
class BytesModule:
    pass


async def test_binary_attachments_reach_the_handler() -> None:
    async with served(BytesModule) as (_, _t, url):
        for transports in (["websocket"], ["polling"]):
            async with client(url, transports) as (sio, _):
                size = await sio.call("size", b"\x00\x01\x02" * 100, timeout=TIMEOUT)
                assert size == 300


async def test_bad_requests_get_engine_io_errors() -> None:
    async with served() as (_, _t, url), httpx.AsyncClient(base_url=url) as http:
        cases = {
            "/socket.io/?EIO=3&transport=polling": {
                "code": 5,
                "message": "Unsupported protocol version",
            },
            "/socket.io/?EIO=4&transport=carrier-pigeon": {
                "code": 0,
                "message": "Transport unknown",
            },
            "/socket.io/?EIO=4&transport=polling&sid=nope": {
                "code": 1,
                "message": "Session ID unknown",
            },
        }
        for path, body in cases.items():
            response = await http.get(path)
            assert response.status_code == 400 and response.json() == body
        refused = await http.post("/socket.io/?EIO=4&transport=polling", content="40")
        assert refused.json() == {"code": 2, "message": "Bad handshake method"}


async def test_shutdown_disconnects_clients() -> None:
    async with served() as (_, _t, url):
        sio = socketio.AsyncClient(reconnection=False)
        gone = asyncio.Event()
        sio.on("disconnect", lambda *_: gone.set())
        await sio.connect(url, transports=["websocket"], wait_timeout=TIMEOUT)
        assert await sio.call("echo", {"text": "x"}, timeout=TIMEOUT) == {"text": "x"}
    async with asyncio.timeout(TIMEOUT):
        await gone.wait()
    await sio.disconnect()


async def test_connections_over_the_per_address_limit_are_refused() -> None:
    async with (
        served(max_connections_per_client=2) as (app, _t, url),
        httpx.AsyncClient(base_url=url) as http,
    ):
        first, _ = await raw_ws(url)
        second = await http.get("/socket.io/?EIO=4&transport=polling")
        assert second.status_code == 200
        third = await http.get("/socket.io/?EIO=4&transport=polling")
        assert third.status_code == 503
        assert third.json() == {"code": 3, "message": "Too many connections from this address"}
        with pytest.raises(websockets.InvalidStatus):
            await raw_ws(url)
        await first.close()
        await app.get(Seen).wait_for("disconnected")  # its session is gone
        again, _ = await raw_ws(url)  # a slot is free again
        await again.close()


async def test_a_connection_over_its_packet_rate_is_closed_and_others_keep_going() -> None:
    async with served(max_packet_rate=20) as (_, _t, url), client(url, ["websocket"]) as (good, _):
        flood, _ = await raw_ws(url)
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(websockets.ConnectionClosed):
                for i in range(1000):
                    await flood.send(f'42["echo",{{"text":"{i}"}}]')
                    await asyncio.sleep(0)  # let the server read
                while True:
                    await flood.recv()
        assert await good.call("echo", {"text": "fine"}, timeout=TIMEOUT) == {"text": "fine"}


async def test_a_ping_flood_from_a_client_that_never_reads_is_bounded() -> None:
    """WebSocket pings on the Engine.IO WebSocket: one pong each, written without
    back-pressure by the frame layer; the server stops reading the flooder while its
    write buffer is full (as on the WebSocket transport, ``test_floods``)."""
    async with served(ping_interval=None) as (_, _t, url), client(url, ["websocket"]) as (good, _):
        port = int(url.rsplit(":", 1)[1])
        flooder = await asyncio.to_thread(connect, port, "/socket.io/?EIO=4&transport=websocket")
        try:
            before = rss_mib()
            sent = await asyncio.to_thread(flood, flooder, 8 * TIME_FACTOR)
            grown = rss_mib() - before
            assert grown < RSS_BOUND_MIB, f"RSS grew {grown:.0f} MiB after {sent >> 20} MiB"
            # The server still serves everyone else.
            assert await good.call("echo", {"text": "fine"}, timeout=TIMEOUT) == {"text": "fine"}
        finally:
            flooder.close()

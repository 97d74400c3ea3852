"""What a hostile or careless Socket.IO client cannot do: grow the server's memory with
invented event or namespace names, run more streams than ``max_streams``, make the
server send invalid JSON, or disturb other clients by breaking the protocol. Each test
drives a real server with a hand-written Engine.IO client over ``websockets``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from framework import message_pattern, module
from framework.transports.socketio import subscribe_message, websocket_gateway
from tests.transports.socketio.app import TIMEOUT, served
from tests.transports.socketio.test_limits import raw_ws
from tests.transports.websocket.test_hostile import rss_mib


@websocket_gateway()
class HostileGateway:
    @subscribe_message("odd")
    async def odd(self, payload: Any) -> dict[str, float]:
        return {"x": float("nan"), "y": float("inf")}

    @subscribe_message("feed")
    async def feed(self, payload: Any) -> AsyncIterator[int]:
        yield 0
        await asyncio.Event().wait()  # runs until cancelled

    @message_pattern("echo.*", transports=["socketio"])
    async def echo(self, payload: Any) -> Any:
        return payload


@module(providers=[HostileGateway])
class HostileModule:
    pass


async def next_text(ws: Any) -> str:
    """The next packet that is not a ping (pings are answered)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame: str = await ws.recv()
            if frame != "2":
                return frame
            await ws.send("3")


async def test_invented_long_event_and_namespace_names_do_not_hold_memory() -> None:
    """1,000 events with distinct 64 KiB names (half unknown, half answered by a
    wildcard handler) and 200 connects to invented namespaces: cached, they would hold
    more than 70 MiB."""
    async with served(HostileModule) as (_, transport, url):
        ws, _ = await raw_ws(url)
        await ws.send('42["echo.warm",1]')
        before = rss_mib()
        pad = "x" * 64 * 1024
        for i in range(1000):
            name = f"{i}{pad}" if i % 2 else f"echo.{i}{pad}"
            await ws.send(f'42{i}["{name}",{i}]')
            frame = await next_text(ws)
            if not frame.startswith(f"43{i}["):  # the exception event comes first
                frame = await next_text(ws)
            assert frame.startswith(f"43{i}[")
        for i in range(200):
            await ws.send(f"40/{i}{pad},")
            assert json.loads((await next_text(ws)).split(",", 1)[1]) == {
                "message": "Invalid namespace"
            }
        grown = rss_mib() - before
        ns = transport.namespace("/")
        assert max(map(len, ns.dispatcher._routes), default=0) < 1024
        assert max(map(len, ns._names), default=0) < 1024
        assert grown < 32, f"RSS grew {grown:.0f} MiB"
        await ws.close()


async def test_replies_are_valid_json_and_streams_are_bounded() -> None:
    async with served(HostileModule, max_streams=4) as (_, _t, url):
        ws, _ = await raw_ws(url)
        await ws.send('421["odd",null]')
        assert json.loads((await next_text(ws))[3:]) == [{"x": None, "y": None}]
        for i in [0, 1, 0, 2, 3, 4]:  # a reused id, then one over max_streams
            await ws.send('42["stream",' + json.dumps({"id": i, "event": "feed"}) + "]")
        items: list[int] = []
        refused: list[str] = []
        while len(items) + len(refused) < 6:
            frame = json.loads((await next_text(ws))[2:])
            if frame[0] == "stream":
                items.append(frame[1]["id"])
            else:
                assert frame[0] == "exception"
                refused.append(frame[1]["message"])
        assert sorted(items) == [0, 1, 2, 3]
        assert refused == [
            "A stream with id 0 is already running",
            "Too many open streams on this connection",
        ]
        await ws.send('42["cancel",[1]]')  # a malformed cancel: an error, not a crash
        frame = json.loads((await next_text(ws))[2:])
        assert frame[0] == "exception" and "cancel" in frame[1]["message"]
        await ws.send('423["echo.after",7]')
        assert await next_text(ws) == "433[7]"
        await ws.close()


async def test_connecting_twice_to_a_namespace_closes_only_that_connection() -> None:
    async with served(HostileModule) as (_, _t, url):
        good, _ = await raw_ws(url)
        bad, _ = await raw_ws(url)
        await bad.send("40")
        async with asyncio.timeout(TIMEOUT):
            while True:
                try:
                    await bad.recv()
                except Exception:
                    break
        await good.send('421["echo.still",1]')
        assert await next_text(good) == "431[1]"
        await good.close()

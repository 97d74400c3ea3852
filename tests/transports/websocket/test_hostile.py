"""What a hostile or careless client cannot do: run more streams than ``max_streams``
(by reusing an id or not), kill its connection with a malformed ``cancel``, make the
server send invalid JSON, or grow the server's memory with invented event names.

Each test drives a real server with a plain ``websockets`` client."""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from framework import injectable, module
from framework.transports.websocket import (
    subscribe_message,
    websocket_gateway,
)
from tests.transports.websocket.app import (
    TIMEOUT,
    Serve,
    raw_client,
    recv_json,
    send_json,
    served,
)


@pytest.fixture(params=["asgi", "standalone"])
def serve(request: pytest.FixtureRequest) -> Serve:
    return functools.partial(served, HostileModule, mode=request.param)


@injectable()
class Probe:
    """How many stream handlers started, and how many of them were closed."""

    def __init__(self) -> None:
        self.started = 0
        self.closed = 0
        self.changed = asyncio.Event()

    async def until_closed(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while self.closed < count:
                self.changed.clear()
                await self.changed.wait()


class Typed(BaseModel):
    n: int


@websocket_gateway()
class HostileGateway:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    @subscribe_message("feed")
    async def feed(self, payload: Any) -> AsyncIterator[int]:
        self.probe.started += 1
        try:
            yield 0
            await asyncio.Event().wait()  # runs until cancelled
        finally:
            self.probe.closed += 1
            self.probe.changed.set()

    @subscribe_message("odd.numbers")
    async def odd_numbers(self, payload: Any) -> dict[str, float]:
        return {"x": float("nan"), "y": float("inf"), "z": -float("inf")}

    @subscribe_message("odd.stream")
    async def odd_stream(self, payload: Any) -> AsyncIterator[float]:
        yield float("nan")

    @subscribe_message("typed")
    async def typed(self, value: Typed) -> int:
        return value.n

    @subscribe_message("echo.*")
    async def echo(self, payload: Any) -> Any:
        return payload


@module(providers=[Probe, HostileGateway])
class HostileModule:
    pass


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses ``NaN`` and ``Infinity`` (as ``JSON.parse`` does)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def error(message: str, fid: Any) -> dict[str, Any]:
    data = {"status": "error", "message": message, "id": fid}
    return {"event": "exception", "data": data, "id": fid}


async def test_a_stream_id_already_streaming_is_refused(serve: Serve) -> None:
    async with serve() as (app, _, url):
        probe = app.get(Probe)
        async with raw_client(url + "/ws") as ws:
            for _ in range(100):
                await send_json(ws, {"event": "feed", "data": None, "id": 1})
            frames = [await recv_json(ws) for _ in range(100)]
            assert frames.count({"event": "feed", "data": 0, "id": 1, "more": True}) == 1
            refused = error("A stream with id 1 is already running on this connection", 1)
            assert frames.count(refused) == 99
            assert probe.started == 1  # the refused handlers' generators never ran
            await send_json(ws, {"event": "feed", "data": None, "id": "a"})
            assert (await recv_json(ws))["id"] == "a"  # another id still streams
        await probe.until_closed(2)  # disconnecting closed both running streams
        assert probe.started == 2


async def test_max_streams_counts_every_stream_and_disconnect_closes_them(serve: Serve) -> None:
    async with serve(max_streams=4) as (app, _, url):
        probe = app.get(Probe)
        async with raw_client(url + "/ws") as ws:
            for fid in range(1, 6):
                await send_json(ws, {"event": "feed", "data": None, "id": fid})
            frames = [await recv_json(ws) for _ in range(5)]
            # The refusal is written by the reader; the streams' items by their tasks.
            assert error("Too many open streams on this connection", 5) in frames
            assert sorted((f for f in frames if f.get("more")), key=lambda f: f["id"]) == [
                {"event": "feed", "data": 0, "id": fid, "more": True} for fid in range(1, 5)
            ]
            # Streams without an id count too.
            await send_json(ws, {"event": "feed", "data": None})
            assert (await recv_json(ws))["data"]["message"] == (
                "Too many open streams on this connection"
            )
            assert probe.started == 4
        await probe.until_closed(4)


@pytest.mark.parametrize("data", [[1], {"id": 1}, None, True, 1.5])
async def test_cancel_with_a_bad_id_gets_an_exception_frame(serve: Serve, data: Any) -> None:
    async with serve() as (app, _, url), raw_client(url + "/ws") as ws:
        await send_json(ws, {"event": "feed", "data": None, "id": 1})
        assert (await recv_json(ws))["more"] is True
        await send_json(ws, {"event": "cancel", "data": data, "id": 2})
        message = '"cancel" takes the id of a running stream (a string or an integer)'
        assert await recv_json(ws) == error(message, 2)
        # The connection keeps serving, and the stream is still there to cancel.
        await send_json(ws, {"event": "cancel", "data": 1, "id": 3})
        assert await recv_json(ws) == {"event": "cancel", "data": True, "id": 3}
        await app.get(Probe).until_closed(1)


async def test_replies_pushes_and_errors_are_valid_json_with_nan_and_infinity(
    serve: Serve,
) -> None:
    async with serve() as (app, transport, url), raw_client(url + "/ws") as ws:
        await send_json(ws, {"event": "odd.numbers", "data": None, "id": 1})
        assert strict_json(await ws.recv()) == {
            "event": "odd.numbers",
            "data": {"x": None, "y": None, "z": None},
            "id": 1,
        }
        await send_json(ws, {"event": "odd.stream", "data": None, "id": 2})
        assert strict_json(await ws.recv()) == {
            "event": "odd.stream",
            "data": None,
            "id": 2,
            "more": True,
        }
        assert strict_json(await ws.recv())["done"] is True
        # A validation error echoes the input: NaN sent by the client comes back null.
        await ws.send('{"event": "typed", "data": {"n": NaN}, "id": 3}')
        frame = strict_json(await ws.recv())
        assert frame["event"] == "exception" and frame["data"]["message"] == "Validation failed"
        assert frame["data"]["errors"][0]["input"] is None
        await send_json(ws, {"event": "subscribe", "data": "odd.#", "id": 4})
        assert strict_json(await ws.recv())["id"] == 4
        assert transport.broadcast("odd", {"x": math.nan, "y": math.inf}) == 1
        assert strict_json(await ws.recv()) == {"event": "odd", "data": {"x": None, "y": None}}
        await app.publish("odd.published", {"x": math.nan, "y": -math.inf})
        assert strict_json(await ws.recv()) == {
            "event": "odd.published",
            "data": {"x": None, "y": None},
        }


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_invented_long_event_names_do_not_hold_memory() -> None:
    """1,000 frames with distinct 64 KiB event names: half unknown, half answered by a
    wildcard handler (so the reply carries the name). Cached, they would hold more than
    100 MiB; the caches keep none of them."""
    async with (
        served(HostileModule, max_message_size=256 * 1024) as (_, transport, url),
        raw_client(url + "/ws", max_size=None) as ws,
    ):
        await send_json(ws, {"event": "echo.warm", "data": None, "id": 0})
        await recv_json(ws)
        before = rss_mib()
        pad = "x" * 64 * 1024
        for i in range(1000):
            name = f"{i}{pad}" if i % 2 else f"echo.{i}{pad}"
            await send_json(ws, {"event": name, "data": None, "id": i})
            frame = await recv_json(ws)
            assert frame["id"] == i
        grown = rss_mib() - before
        routes = transport.endpoints["/ws"].dispatcher._routes
        prefixes = transport.hub.encoder._prefixes
        assert max(map(len, routes)) < 1024 and max(map(len, prefixes)) < 1024
        assert grown < 32, f"RSS grew {grown:.0f} MiB"

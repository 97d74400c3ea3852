"""What the frame I/O underneath a session must keep, on every server it can run on:
the app's port on picows (the default: uvicorn hands the upgrade over), the app's port
through ASGI (uvicorn's own WebSocket protocol, as under ``uvicorn module:app``), the
standalone server on picows (the default), and the standalone ``websockets`` server
(``compression=True``, which picows cannot do).

Each test drives a real server with a plain ``websockets`` client."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import pytest
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed

from framework.transports.websocket import WebSocketTransport
from tests.transports.websocket.app import (
    TIMEOUT,
    Events,
    Serve,
    raw_client,
    recv_json,
    served,
)
from tests.transports.websocket.test_floods import upgrade_request

MODES: dict[str, dict[str, Any]] = {
    "asgi": {"mode": "asgi"},
    "asgi-sansio": {"mode": "asgi", "uvicorn": {"ws": "websockets-sansio"}},
    "picows": {"mode": "standalone"},
    "websockets": {"mode": "standalone", "compression": True},
}


@pytest.fixture(params=list(MODES))
def serve(request: pytest.FixtureRequest) -> Serve:
    return functools.partial(served, **MODES[request.param])


def check(n: int, pad: str = "") -> str:
    return json.dumps({"event": "order.check", "data": {"id": n, "total": 1.5, "pad": pad}})


async def test_compression_is_off_unless_asked_for() -> None:
    for options, negotiated in (({}, False), ({"compression": True}, True)):
        for mode in ("asgi", "standalone"):
            async with (
                served(mode=mode, **options) as (_, _, url),
                raw_client(url + "/ws", compression="deflate") as ws,
            ):
                extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
                assert ("permessage-deflate" in extensions) is negotiated, (mode, options)
                await ws.send(check(1))
                assert (await recv_json(ws))["data"] == {"id": 1, "total": 1.5}


async def test_other_websocket_routes_on_the_app_port_keep_uvicorns_protocol() -> None:
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("other:" + await ws.receive_text())
        await ws.close()

    async with served() as (app, _, url):
        app.asgi.router.routes.append(WebSocketRoute("/other", echo))
        async with raw_client(url + "/other") as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "other:hi"
        async with raw_client(url + "/ws") as ws:  # and the transport's path still works
            await ws.send(check(3))
            assert (await recv_json(ws))["data"]["id"] == 3


def test_the_standalone_server_is_picows_without_compression() -> None:
    # Not a behaviour, but the other tests here mean nothing if both modes ran websockets.
    from framework.transports.websocket import _standalone

    assert _standalone.HAVE_PICOWS


async def test_a_fragmented_message_is_handled_once_joined(serve: Serve) -> None:
    async with serve() as (_, _, url), raw_client(url + "/ws") as ws:
        frame = check(7, "x" * 300)
        await ws.send([frame[:10], frame[10:200], frame[200:]])
        reply = await recv_json(ws)
        assert reply["event"] == "order.check"
        assert reply["data"] == {"id": 7, "total": 1.5}


async def test_a_fragmented_message_over_the_limit_closes_1009(serve: Serve) -> None:
    async with (
        serve(max_message_size=1024) as (app, _, url),
        raw_client(url + "/ws", max_size=None) as ws,
    ):
        frame = check(1, "x" * 2000)
        await ws.send([frame[:600], frame[600:1200], frame[1200:]])
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert app.get(Events).ran == []


async def test_close_codes_travel_both_ways(serve: Serve) -> None:
    async with serve() as (app, transport, url):
        async with raw_client(url + "/ws") as ws:
            await recv_json(ws, skip=())  # the welcome: the session is open
            (sock,) = transport.sockets.values()
            await sock.close(4000, "go away")
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(TIMEOUT):
                    await ws.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "go away")
        async with raw_client(url + "/ws") as ws:
            await recv_json(ws, skip=())
            await ws.close(4001, "bye")
        gone = [await asyncio.wait_for(app.get(Events).disconnected.get(), TIMEOUT)]
        gone.append(await asyncio.wait_for(app.get(Events).disconnected.get(), TIMEOUT))
        assert [s.close_code for s in gone] == [4000, 4001]


async def test_replies_keep_their_order_under_pipelining(serve: Serve) -> None:
    async with serve() as (_, _, url), raw_client(url + "/ws") as ws:
        for n in range(200):
            await ws.send(check(n))
        got = [(await recv_json(ws))["data"]["id"] for _ in range(200)]
        assert got == list(range(200))


@pytest.mark.parametrize("mode", list(MODES))
async def test_keepalive_drops_a_peer_that_never_answers_pings(mode: str) -> None:
    options: dict[str, Any] = {**MODES[mode], "ping_interval": 0.1, "ping_timeout": 0.1}
    options["close_timeout"] = 0.5  # the silent peer never answers the close either
    async with served(**options) as (app, transport, url):
        host, port = url.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(upgrade_request("/ws"))
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert b"101" in status
        # Never read again, never answer a ping: the server must give up on us.
        gone = await asyncio.wait_for(app.get(Events).disconnected.get(), TIMEOUT)
        assert gone.path == "/ws"
        assert isinstance(transport, WebSocketTransport) and transport.sockets == {}
        writer.close()


@pytest.mark.parametrize("request_head", [b"GARBAGE\r\n\r\n", b"GET /ws HTTP/1.1\r\n\r\n"])
async def test_a_bad_upgrade_request_gets_400_and_no_session(request_head: bytes) -> None:
    async with served(mode="standalone") as (app, transport, url):
        host, port = url.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request_head)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert status.startswith(b"HTTP/1.1 400"), status
        assert transport.sockets == {}
        assert app.get(Events).connected == []
        writer.close()


async def test_the_loop_is_the_one_the_test_id_names(request: pytest.FixtureRequest) -> None:
    # Guards the conftest: these tests must really run on uvloop too.
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    assert loop in request.node.name


async def test_a_handshake_stuck_in_a_guard_is_dropped_after_header_timeout() -> None:
    # The app port's picows hand-over keeps the server's header timeout for the whole
    # handshake, admission included.
    release = asyncio.Event()

    async def hangs(handshake: object) -> bool:
        await release.wait()
        return False

    uvicorn = {"header_timeout": 0.3}
    async with served(mode="asgi", uvicorn=uvicorn, guards=[hangs]) as (_, transport, url):
        host, port = url.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(upgrade_request("/ws"))
        await writer.drain()
        # The server closes the connection without answering the upgrade: after the
        # 0.3 s header timeout, well before the 10 s default (so the option is obeyed).
        assert await asyncio.wait_for(reader.read(), 5.0) == b""
        assert transport.sockets == {}
        writer.close()
        release.set()

"""``WebSocketClient`` against a real server: what the contract suite does not cover."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from framework import Application, RemoteError, RequestTimeoutError, TransportError
from framework.transports.websocket import WebSocketClient, WebSocketTransport, WsSocket
from tests.transports.websocket.app import TIMEOUT, Events, served


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll server-side state that has no event to await (the client gets no reply to
    an unsubscribe or cancel it sends on leaving), bounded by the test timeout."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():  # noqa: ASYNC110 - nothing to await
            await asyncio.sleep(0.01)


async def test_subscribe_yields_published_events() -> None:
    async with served() as (app, _, url), WebSocketClient(url + "/ws") as client:
        events = client.subscribe(["orders.*"])
        first = asyncio.ensure_future(anext(events))
        await wait_until(lambda: any(s.subscriptions for s in _sockets(app)))
        await app.publish("orders.created", {"id": 1})
        await app.publish("stock.low", {"id": 2})
        await app.publish("orders.paid", {"id": 3})
        assert await asyncio.wait_for(first, TIMEOUT) == ("orders.created", {"id": 1})
        assert await asyncio.wait_for(anext(events), TIMEOUT) == ("orders.paid", {"id": 3})
        await events.aclose()
        await wait_until(lambda: not any(s.subscriptions for s in _sockets(app)))


def _sockets(app: Application) -> list[WsSocket]:
    transport = next(t for t in app.transports if isinstance(t, WebSocketTransport))
    return list(transport.sockets.values())


async def test_leaving_a_stream_early_cancels_it_on_the_server() -> None:
    async with served() as (app, _, url), WebSocketClient(url + "/ws") as client:
        stream = client.stream("forever", None)
        assert [await anext(stream), await anext(stream)] == [0, 1]
        assert _sockets(app)[0].stream_count == 1
        await stream.aclose()
        await wait_until(lambda: _sockets(app)[0].stream_count == 0)
        assert await client.send("ticks", 3) == 2  # a stream's last item


async def test_timeout_and_remote_errors() -> None:
    async with served() as (app, _, url), WebSocketClient(url + "/ws") as client:
        with pytest.raises(RequestTimeoutError):
            await client.send("slow", None, timeout=0.05)
        app.get(Events).release_slow.set()
        with pytest.raises(RemoteError) as info:
            await client.send("order.check", {"id": "x"})
        assert info.value.payload["message"] == "Validation failed"
        assert "id" not in info.value.payload  # the frame id is the client's business


async def test_a_dropped_connection_fails_waiting_calls_and_reconnects() -> None:
    async with served() as (app, transport, url), WebSocketClient(url + "/ws") as client:
        events = app.get(Events)
        pending = asyncio.ensure_future(client.send("slow", None))
        await asyncio.wait_for(events.slow_started.wait(), TIMEOUT)
        for sock in transport.sockets.values():
            sock.begin_close(1000, "bye", flush=False)
        with pytest.raises(TransportError, match="closed"):
            await asyncio.wait_for(pending, TIMEOUT)
        events.release_slow.set()
        assert await client.send("ticks", 1) == 0  # a new connection


async def test_first_frame_auth() -> None:
    def authenticate(socket: object, data: object) -> bool:
        return data == {"token": "s3cret"}

    async with served(authenticate=authenticate) as (_, _, url):
        async with WebSocketClient(url + "/ws", auth={"token": "s3cret"}) as client:
            assert await client.send("ticks", 1) == 0
        client = WebSocketClient(url + "/ws", auth={"token": "nope"})
        with pytest.raises(TransportError):
            await client.connect()
        await client.close()


async def test_unreachable_server_is_a_transport_error() -> None:
    client = WebSocketClient("ws://127.0.0.1:9/ws", open_timeout=TIMEOUT)
    with pytest.raises(TransportError, match="Cannot open"):
        await client.send("x", 1)

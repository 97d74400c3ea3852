"""``TestingApp.listen()`` with its WebSocket and SSE clients: a real uvicorn server on
127.0.0.1, real handshakes and frames, as a user's pytest would drive them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from framework import (
    ConfigurationError,
    RemoteError,
    ServerSentEvent,
    controller,
    message_pattern,
    module,
    sse,
)
from framework.testing import ReceivedEvent, TestingApp, create_testing_module
from framework.transports.sse import SseTransport
from framework.transports.websocket import WebSocketTransport
from tests.timing import TIME_FACTOR

TIMEOUT = 10 * TIME_FACTOR


@controller("/ticks")
class TicksController:
    @message_pattern("ticks.double")
    async def double(self, n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return 2 * n

    @sse("/count")
    async def count(self) -> AsyncIterator[ServerSentEvent]:
        for i in range(3):
            yield ServerSentEvent(data={"n": i}, event="tick", id=str(i))


@module(controllers=[TicksController])
class TicksModule:
    pass


def _testing() -> TestingApp:
    return (
        create_testing_module(TicksModule)
        .with_transports(WebSocketTransport(path="/ws"), SseTransport(path="/events"))
        .compile()
    )


async def test_websocket_client_talks_to_the_real_server() -> None:
    async with _testing() as t:
        url = await t.listen()
        assert url.startswith("http://127.0.0.1:") and t.url == url
        async with t.websocket("/ws", default_timeout=TIMEOUT) as ws:
            assert await ws.send("ticks.double", 21) == 42
            with pytest.raises(RemoteError, match="Internal server error"):
                await ws.send("ticks.double", -1)
            pushed = ws.subscribe("news.*")
            first = asyncio.ensure_future(anext(pushed))
            # A subscribe request is answered once the server holds the subscription.
            assert await ws.send("subscribe", "news.*") == ["news.*"]
            await t.app.publish("news.today", {"title": "hi"})
            assert await asyncio.wait_for(first, TIMEOUT) == ("news.today", {"title": "hi"})
            await pushed.aclose()


async def test_sse_client_receives_published_events_from_the_transport() -> None:
    async with _testing() as t:
        await t.listen()
        async with t.sse("/events", subscribe=["news.*"], timeout=TIMEOUT) as events:
            assert events.response.headers["content-type"].startswith("text/event-stream")
            await t.app.publish("news.today", {"title": "hi"})
            event = await events.next()
            assert event.event == "news.today" and event.json() == {"title": "hi"}
            assert event.id


async def test_sse_client_reads_an_sse_route_to_its_end() -> None:
    async with _testing() as t:
        await t.listen()
        async with t.sse("/ticks/count", timeout=TIMEOUT) as events:
            got = await events.take(3)
            assert [(e.event, e.id, e.json()) for e in got] == [
                ("tick", "0", {"n": 0}),
                ("tick", "1", {"n": 1}),
                ("tick", "2", {"n": 2}),
            ]
            with pytest.raises(EOFError):
                await events.next()


async def test_refused_stream_raises_on_entering_and_stop_closes_the_port() -> None:
    t = _testing()
    async with t:
        url = await t.listen()
        with pytest.raises(httpx.HTTPStatusError) as refused:
            async with t.sse("/events"):
                pass  # no subscribe: 400
        assert refused.value.response.status_code == 400
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(url + "/ticks/count")
    with pytest.raises(ConfigurationError, match="listen"):
        t.url  # noqa: B018


def test_event_parser_follows_the_whatwg_rules() -> None:
    from framework.testing._live import _EventParser

    parser = _EventParser()
    assert parser.feed("retry: 3000\n\n: ping\n\nid: 7\r") == []  # no data: no event
    got = parser.feed('\nevent: a\ndata: x\r\ndata:\n\ndata: {"k": 1}\n')
    assert got == [ReceivedEvent("a", "x\n", "7", 3000)]
    assert parser.feed("\n") == [ReceivedEvent("message", '{"k": 1}', "7", 3000)]
    assert parser.feed("id: bad\0id\ndata: y\n\n") == [ReceivedEvent("message", "y", "7", 3000)]

"""Two apps in one process keep apart: their metrics, their trace hooks, their streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from framework import (
    Application,
    ClientProxy,
    MessageContext,
    controller,
    create_app,
    injectable,
    message_pattern,
    module,
    sse,
)
from framework.observability import Observability
from tests.observability.promtext import sample
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running
from tests.transports.sse.conftest import subscribe

LIMIT = 10 * TIME_FACTOR


@asynccontextmanager
async def _http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@controller()
class Calc:
    @message_pattern("calc.double")
    async def double(self, n: int) -> int:
        return 2 * n


@module(controllers=[Calc])
class CalcModule:
    pass


async def test_each_app_counts_only_its_own_messages() -> None:
    pytest.importorskip("prometheus_client")
    metrics = Observability(health_path=None, metrics_path="/metrics")
    a = create_app(CalcModule, observability=metrics)
    b = create_app(CalcModule, observability=metrics)
    async with a, b, _http(a) as http_a, _http(b) as http_b:
        for n in range(3):
            assert await a.client.send("calc.double", n) == 2 * n
        assert await b.client.send("calc.double", 5) == 10
        text_a = (await http_a.get("/metrics")).text
        text_b = (await http_b.get("/metrics")).text
    labels = {"transport": "memory", "pattern": "calc.double", "handler": "Calc.double"}
    assert sample(text_a, "framework_messages_handled_total", **labels) == 3
    assert sample(text_b, "framework_messages_handled_total", **labels) == 1
    # Each app compiled its own handlers, wrapped by its own middleware.
    assert a.router.handlers[0] is not b.router.handlers[0]


# Reachable from the front app's handler, but not one of the front app's clients.
_back: list[Application] = []


@injectable()
class Seen:
    def __init__(self) -> None:
        self.traceparent: dict[str, Any] = {}


@controller()
class Front:
    def __init__(self, client: ClientProxy, seen: Seen) -> None:
        self.client = client
        self.seen = seen

    @message_pattern("front.go")
    async def go(self, n: int) -> int:
        await self.client.send("front.echo", n)  # the front app's own client
        await _back[0].client.send("back.echo", n)  # another app's memory client
        return n

    @message_pattern("front.echo")
    async def echo(self, n: int, ctx: MessageContext) -> int:
        self.seen.traceparent["front"] = (ctx.headers or {}).get("traceparent")
        return n


@controller()
class Back:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @message_pattern("back.echo")
    async def echo(self, n: int, ctx: MessageContext) -> int:
        self.seen.traceparent["back"] = (ctx.headers or {}).get("traceparent")
        return n


@module(controllers=[Front], providers=[Seen])
class FrontModule:
    pass


@module(controllers=[Back], providers=[Seen])
class BackModule:
    pass


async def test_tracing_on_one_app_adds_no_traceparent_on_another_apps_client() -> None:
    front = create_app(FrontModule, observability=Observability(health_path=None))
    back = create_app(BackModule)
    _back[:] = [back]
    try:
        async with back, front:
            assert await front.client.send("front.go", 1) == 1
            seen = front.get(Seen).traceparent
            assert str(seen["front"]).startswith("00-")
            assert back.get(Seen).traceparent == {"back": None}
            assert back.client.header_hooks == back.memory.client_header_hooks == ()
    finally:
        _back.clear()
    assert front.client.header_hooks == ()


@injectable()
class Gate:
    def __init__(self) -> None:
        self.release = asyncio.Event()


@controller("/feed")
class Feed:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    @sse("/held", heartbeat=None)
    async def held(self) -> AsyncIterator[dict[str, int]]:
        yield {"n": 1}
        await self.gate.release.wait()
        yield {"n": 2}


@module(controllers=[Feed], providers=[Gate])
class FeedModule:
    pass


async def test_an_app_shutting_down_ends_only_its_own_route_streams() -> None:
    a, b = create_app(FeedModule), create_app(FeedModule)
    async with (
        uvicorn_running(a) as port_a,
        uvicorn_running(b) as port_b,
        httpx.AsyncClient(timeout=LIMIT) as http,
        subscribe(http, f"http://127.0.0.1:{port_a}/feed/held") as (_, reader_a, reading_a),
        subscribe(http, f"http://127.0.0.1:{port_b}/feed/held") as (_, reader_b, reading_b),
    ):
        await reader_a.wait_for(lambda r: len(r.events) == 1)
        await reader_b.wait_for(lambda r: len(r.events) == 1)
        await b.drain()  # what B's server does when it begins to shut down
        async with asyncio.timeout(LIMIT):
            await reading_b  # B's stream ended...
        assert not reading_a.done()  # ...A's is still open and still delivers
        a.get(Gate).release.set()
        await reader_a.wait_for(lambda r: len(r.events) == 2)
        assert len(reader_b.events) == 1

"""Prometheus metrics: per-handler counters and latency, connected clients, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from framework import (
    Application,
    ConfigurationError,
    RemoteError,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
)
from framework.observability import Observability
from framework.transports.sse import SseTransport
from framework.transports.websocket import WebSocketClient, WebSocketTransport
from tests.observability.promtext import sample
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running

prometheus = pytest.importorskip("prometheus_client")

LIMIT = 10 * TIME_FACTOR


@controller()
class Calc:
    @message_pattern("calc.double")
    async def double(self, n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return 2 * n

    @message_pattern("calc.count")
    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @event_pattern("calc.noted")
    async def noted(self, n: int) -> None:
        if n == 13:
            raise RuntimeError("unlucky")


@module(controllers=[Calc])
class CalcModule:
    pass


def _observed(**options: Any) -> Observability:
    """Metrics in the default registry: a fresh one per app."""
    return Observability(metrics_path="/metrics", **options)


@asynccontextmanager
async def _http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def _labels(attr: str) -> dict[str, str]:
    pattern = {"double": "calc.double", "count": "calc.count", "noted": "calc.noted"}[attr]
    return {"transport": "memory", "pattern": pattern, "handler": f"Calc.{attr}"}


async def test_handled_failed_and_latency_per_handler() -> None:
    async with create_app(CalcModule, observability=_observed()) as app, _http(app) as http:
        assert await app.client.send("calc.double", 2) == 4
        assert await app.client.send("calc.double", 3) == 6
        with pytest.raises(RemoteError):
            await app.client.send("calc.double", -1)
        assert [i async for i in app.client.stream("calc.count", 3)] == [0, 1, 2]
        for n in (1, 13):
            await app.client.emit("calc.noted", n)
        await asyncio.wait_for(app.memory.join(), LIMIT)
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    double = _labels("double")
    assert sample(text, "framework_messages_handled_total", **double) == 2
    assert sample(text, "framework_messages_failed_total", **double) == 1
    assert sample(text, "framework_handler_duration_seconds_count", **double) == 3
    assert sample(text, "framework_handler_duration_seconds_bucket", le="+Inf", **double) == 3
    assert 0 < sample(text, "framework_handler_duration_seconds_sum", **double) < LIMIT
    # A stream counts once, when it ends, and is not timed.
    assert sample(text, "framework_messages_handled_total", **_labels("count")) == 1
    assert sample(text, "framework_handler_duration_seconds_count", **_labels("count")) == 0
    noted = _labels("noted")
    assert sample(text, "framework_messages_handled_total", **noted) == 1
    assert sample(text, "framework_messages_failed_total", **noted) == 1
    assert sample(text, "framework_messages_retried_total", **noted) == 0
    # The default per-app registry also has the process collector.
    assert "process_cpu_seconds_total" in text


async def test_connected_websocket_and_sse_clients() -> None:
    ws, sse = WebSocketTransport("/ws"), SseTransport(path="/events")
    app = create_app(CalcModule, transports=[ws, sse], observability=_observed())
    async with (
        uvicorn_running(app) as port,
        WebSocketClient(f"ws://127.0.0.1:{port}/ws") as client,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=LIMIT) as http,
    ):
        assert await client.send("calc.double", 1) == 2  # the socket is registered
        async with http.stream("GET", "/events", params={"subscribe": "calc.*"}) as stream:
            assert stream.status_code == 200
            text = (await http.get("/metrics")).text
            assert sample(text, "framework_connected_clients", transport="ws") == 1
            assert sample(text, "framework_connected_clients", transport="sse") == 1
        ws_double = {**_labels("double"), "transport": "ws"}
        assert sample(text, "framework_messages_handled_total", **ws_double) == 1


async def test_without_metrics_path_nothing_is_served_or_counted() -> None:
    observability = Observability()
    async with create_app(CalcModule, observability=observability) as app, _http(app) as http:
        assert (await http.get("/metrics")).status_code == 404


async def test_a_shared_registry_refuses_a_second_app() -> None:
    registry = prometheus.CollectorRegistry()
    first = create_app(
        CalcModule, observability=Observability(metrics_path="/m", registry=registry)
    )
    second = create_app(
        CalcModule, observability=Observability(metrics_path="/m", registry=registry)
    )
    async with first:
        with pytest.raises(ConfigurationError, match="own registry"):
            await second.start()
    # The first app unregistered its metrics when it stopped: the registry is free again.
    async with second:
        pass


def test_bad_configuration_is_refused_early() -> None:
    with pytest.raises(ConfigurationError, match="must start with '/'"):
        Observability(health_path="health")
    with pytest.raises(ConfigurationError, match="ascending"):
        Observability(metrics_path="/metrics", latency_buckets=(1.0, 0.5))

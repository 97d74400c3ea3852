"""A transport written by a user takes part in observability through ``host.events`` and
the compiled handler middlewares, as the built-in ones do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from framework import Application, controller, create_app, event_pattern, module
from framework.observability import Observability
from framework.transports import (
    Dispatcher,
    Inbound,
    MessageHandler,
    Transport,
    TransportEvents,
    encode,
)
from tests.observability.promtext import sample


class TinyTransport(Transport):
    """Delivers what the test hands it; retries a failed handler once, then gives up."""

    name = "tiny"

    async def start(self) -> None:
        for peer in ("peer-1", "peer-2"):
            self.host.events.connected(self, peer)

    async def stop(self) -> None:
        pass

    async def deliver(self, pattern: str, data: Any) -> None:
        dispatcher = Dispatcher(self.host.router, self.name)
        raw = encode(data)
        inbound = Inbound(pattern, raw, None, raw)
        for handler in dispatcher.route(pattern).events:
            try:
                await dispatcher.call(handler, inbound)
                continue
            except Exception:
                self.host.events.retried(self, handler)
            try:
                await dispatcher.call(handler, inbound)
            except Exception:
                self.host.events.dead_lettered(self, handler)

    def hang_up(self, peer: str) -> None:
        self.host.events.disconnected(self, peer)

    def cut_off(self, peer: str) -> None:
        self.host.events.dropped(self, peer, "slow")


@controller()
class Work:
    @event_pattern("tiny.work")
    async def work(self, n: int) -> None:
        if n < 0:
            raise ValueError("negative")


@module(controllers=[Work])
class WorkModule:
    pass


class Recorder(TransportEvents):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []

    def retried(self, transport: Transport, handler: MessageHandler) -> None:
        self.seen.append(("retried", transport.name, handler.name))

    def dropped(self, transport: Transport, peer: Any, why: str) -> None:
        self.seen.append(("dropped", transport.name, (peer, why)))


@asynccontextmanager
async def _http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_a_user_transports_events_reach_metrics_and_other_observers() -> None:
    pytest.importorskip("prometheus_client")
    tiny = TinyTransport()
    app = create_app(
        WorkModule,
        transports=[tiny],
        observability=Observability(health_path=None, metrics_path="/metrics"),
    )
    recorder = Recorder()
    app.use_transport_events(recorder)
    async with app, _http(app) as http:
        await tiny.deliver("tiny.work", 1)
        await tiny.deliver("tiny.work", -1)
        tiny.hang_up("peer-2")
        tiny.cut_off("peer-1")
        text = (await http.get("/metrics")).text
    labels = {"transport": "tiny", "pattern": "tiny.work", "handler": "Work.work"}
    assert sample(text, "framework_messages_handled_total", **labels) == 1
    assert sample(text, "framework_messages_failed_total", **labels) == 2
    assert sample(text, "framework_messages_retried_total", **labels) == 1
    assert sample(text, "framework_messages_dead_lettered_total", **labels) == 1
    assert sample(text, "framework_connected_clients", transport="tiny") == 1
    assert sample(text, "framework_clients_dropped_total", transport="tiny", reason="slow") == 1
    assert recorder.seen == [
        ("retried", "tiny", "Work.work"),
        ("dropped", "tiny", ("peer-1", "slow")),
    ]


async def test_without_observers_a_transport_reports_to_nobody() -> None:
    tiny = TinyTransport()
    async with create_app(WorkModule, transports=[tiny]) as app:
        assert type(app.events) is TransportEvents  # the default: every method does nothing
        await tiny.deliver("tiny.work", -1)
        tiny.cut_off("peer-1")

"""Liveness and readiness endpoints over the transports' ``alive`` and ``ready``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from framework import Application, controller, create_app, message_pattern, module
from framework.observability import Observability
from framework.transports.base import Transport
from framework.transports.kafka import KafkaTransport
from framework.transports.memory import MemoryTransport


class Switchable(Transport):
    """A transport whose state the test sets, as a custom transport reports its own."""

    name = "switch"

    def __init__(self) -> None:
        self.connected = False
        self.loop_running = True

    async def start(self) -> None:
        self.connected = True

    async def stop(self) -> None:
        self.connected = False

    @property
    def ready(self) -> bool:
        return self.connected

    @property
    def alive(self) -> bool:
        return self.loop_running


class Broken(Transport):
    name = "broken"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @property
    def ready(self) -> bool:
        raise RuntimeError("probe failed")


@controller()
class Ping:
    @message_pattern("ping")
    async def ping(self) -> str:
        return "pong"


@module(controllers=[Ping])
class PingModule:
    pass


@asynccontextmanager
async def _http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_a_running_app_is_live_and_ready() -> None:
    async with create_app(PingModule, observability=Observability()) as app, _http(app) as http:
        for probe in ("live", "ready"):
            response = await http.get(f"/health/{probe}")
            assert response.status_code == 200
            assert response.json() == {"status": "up", "transports": {"memory": "up"}}
            assert response.headers["cache-control"] == "no-store"


async def test_a_transport_that_is_not_ready_makes_the_app_unready_but_alive() -> None:
    switch = Switchable()
    app = create_app(PingModule, transports=[switch], observability=Observability())
    async with app, _http(app) as http:
        switch.connected = False  # e.g. lost its connection
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "down", "transports": {"memory": "up", "switch": "down"}}
        assert (await http.get("/health/live")).status_code == 200

        switch.loop_running = False  # its consume loop died: restart the process
        live = await http.get("/health/live")
        assert live.status_code == 503
        assert live.json()["transports"]["switch"] == "down"

        switch.connected = switch.loop_running = True
        assert (await http.get("/health/ready")).status_code == 200
        assert (await http.get("/health/live")).status_code == 200


async def test_same_named_transports_are_told_apart_and_a_failing_probe_is_down() -> None:
    transports = [Switchable(), Switchable(), Broken()]
    app = create_app(PingModule, transports=transports, observability=Observability())
    async with app, _http(app) as http:
        ready = await http.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["transports"] == {
        "memory": "up",
        "switch": "up",
        "switch-2": "up",
        "broken": "down",
    }


async def test_health_path_is_configurable_or_off() -> None:
    observed = Observability(health_path="/ops/health/")
    async with create_app(PingModule, observability=observed) as app, _http(app) as http:
        assert (await http.get("/ops/health/ready")).status_code == 200
        assert (await http.get("/health/ready")).status_code == 404
    app = create_app(PingModule, observability=Observability(health_path=None))
    async with app, _http(app) as http:
        assert (await http.get("/health/live")).status_code == 404


async def test_transports_report_their_state_before_start_and_after_stop() -> None:
    memory, kafka = MemoryTransport(), KafkaTransport()
    assert (memory.ready, memory.alive) == (False, True)
    assert (kafka.ready, kafka.alive) == (False, True)
    async with create_app(PingModule) as app:
        assert (app.memory.ready, app.memory.alive) == (True, True)
    assert (app.memory.ready, app.memory.alive) == (False, True)

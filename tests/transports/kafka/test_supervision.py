"""Supervision on the real broker: no zombie consumers (issue 15).

A consumer loop that dies (injected: its task is cancelled) or a broker that stays
away longer than ``disconnected_timeout`` turns ``/health/ready`` to 503; then the
transport restarts with backoff (``on_failure="restart"``, the default) and readiness
comes back, or the app's server stops and the process would exit 1 (``"exit"``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from framework import Application
from framework.observability import Observability
from framework.testing.kafka import LocalKafkaBroker
from framework.testing.kafka.pytest_fixtures import start_broker_or_skip
from framework.transports.kafka import KafkaTransport
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running
from tests.transports.kafka.test_reliability import Seen, name, produce_ids, recording_app

pytestmark = pytest.mark.kafka

LIMIT = 60 * TIME_FACTOR


def _app(bootstrap: str, topic: str, seen: Seen, engine: str, **options: Any) -> Application:
    app, transport = recording_app(
        bootstrap,
        topic,
        seen,
        engine,
        observability=Observability(),
        commit_interval=0.2,
        commit_timeout=2.0,
        shutdown_timeout=2.0,
        **options,
    )
    transport.supervisor.interval = 0.1
    return app


async def _ready_becomes(http: httpx.AsyncClient, status: int) -> None:
    """Poll ``/health/ready`` (what a Kubernetes probe does) until it answers ``status``."""
    async with asyncio.timeout(LIMIT):
        while (await http.get("/health/ready")).status_code != status:  # noqa: ASYNC110 - probe
            await asyncio.sleep(0.05)


async def test_a_dead_consumer_loop_turns_unready_and_is_restarted(
    engine: str,
    kafka_bootstrap_servers: str,
) -> None:
    bootstrap, topic, seen = kafka_bootstrap_servers, name("sup"), Seen()
    app = _app(bootstrap, topic, seen, engine)
    async with (
        uvicorn_running(app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        transport = app.transports[-1]
        assert isinstance(transport, KafkaTransport)
        await produce_ids(bootstrap, topic, range(10))
        await seen.until(lambda: seen.ids >= set(range(10)))
        assert (await http.get("/health/ready")).status_code == 200
        fetch = transport._fetch_task
        assert fetch is not None
        fetch.cancel()  # the consumer loop dies (a bug, a cancelled task)
        await _ready_becomes(http, 503)
        await _ready_becomes(http, 200)
        assert transport.supervisor.restarts == 1 and transport.supervisor.failure is None
        await produce_ids(bootstrap, topic, range(10, 20))
        await seen.until(lambda: seen.ids >= set(range(20)))  # consuming again


async def test_on_failure_exit_stops_the_server(engine: str, kafka_bootstrap_servers: str) -> None:
    bootstrap, topic, seen = kafka_bootstrap_servers, name("sup"), Seen()
    app = _app(bootstrap, topic, seen, engine, on_failure="exit")
    await app.start()
    try:
        server = app.server("127.0.0.1", 0, lifespan="off", log_level="warning")
        serving = asyncio.create_task(server.serve())
        async with asyncio.timeout(LIMIT):
            while not server.started:  # noqa: ASYNC110 - uvicorn sets only a flag
                await asyncio.sleep(0.01)
        transport = app.transports[-1]
        assert isinstance(transport, KafkaTransport) and transport._fetch_task is not None
        transport._fetch_task.cancel()
        async with asyncio.timeout(LIMIT):
            await serving  # the server stops by itself
        assert app.failure is not None and "kafka-consume" in app.failure
        assert not transport.ready
    finally:
        await app.stop()


async def test_a_broker_gone_past_disconnected_timeout_turns_unready_then_recovers(
    engine: str,
    local_kafka_broker: LocalKafkaBroker,
) -> None:
    broker, topic, seen = local_kafka_broker, name("sup"), Seen()
    bootstrap = broker.bootstrap_servers
    app = _app(bootstrap, topic, seen, engine, disconnected_timeout=2.0)
    async with (
        uvicorn_running(app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        transport = app.transports[-1]
        assert isinstance(transport, KafkaTransport)
        await produce_ids(bootstrap, topic, range(10))
        await seen.until(lambda: seen.ids >= set(range(10)))
        broker.kill()
        await _ready_becomes(http, 503)
        assert transport.supervisor.failure is not None
        assert "no broker connection" in transport.supervisor.failure
        await asyncio.to_thread(broker.restart)
        await _ready_becomes(http, 200)
        assert transport.supervisor.restarts >= 1
        await produce_ids(bootstrap, topic, range(10, 20))
        await seen.until(lambda: seen.ids >= set(range(20)))


async def test_a_rotated_password_turns_unready_and_readiness_names_the_refused_login() -> None:
    """The SCRAM password changes while the app runs (as an operator rotates it) and the
    broker restarts: reconnecting is refused, so the transport is unready and its
    supervisor names the refused login on every failed restart, until the app is
    restarted with the new password."""
    broker = start_broker_or_skip(LocalKafkaBroker(security="sasl_plaintext"))
    try:
        bootstrap = broker.secure_bootstrap_servers()
        security = broker.client_security(mechanism="SCRAM-SHA-256")
        topic, seen = name("sup.rotated"), Seen()
        app = _app(bootstrap, topic, seen, "aiokafka", disconnected_timeout=1.0, security=security)
        async with (
            uvicorn_running(app) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            transport = app.transports[-1]
            assert isinstance(transport, KafkaTransport)
            await _ready_becomes(http, 200)
            await asyncio.to_thread(broker.change_scram_password, "rotated-pw")
            await asyncio.to_thread(broker.restart)  # drops the logged-in connections
            await _ready_becomes(http, 503)
            refused = "Kafka authentication failed for user 'framework' (SCRAM-SHA-256)"
            try:
                # Restarts made while the broker is still coming back are refused
                # connections; the ones after it name the login.
                async with asyncio.timeout(LIMIT):
                    while refused not in (transport.supervisor.failure or ""):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            except TimeoutError:
                pytest.fail(f"supervisor.failure is {transport.supervisor.failure!r}")
            assert (await http.get("/health/ready")).status_code == 503
    finally:
        broker.stop()

"""The example app with KAFKA_BOOTSTRAP_SERVERS set, on the session's real Kafka broker:
HTTP creates an order, the event travels over Kafka to the notifications handler, a
Kafka client gets the order by request/reply, and the publish reaches a WebSocket
subscriber through the Kafka relay. The same again on a SASL_SSL listener, configured
from the variables ``framework kafka start --security sasl_ssl`` prints."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid

import httpx
import pytest
import websockets

from example_app.main import build_app
from example_app.notifications.feed import NotificationFeed
from example_app.orders.models import OrderCreated
from framework.testing.kafka import LocalKafkaBroker
from framework.testing.kafka.cli import client_settings
from framework.transports.kafka import KafkaClient, KafkaSecurity
from tests.timing import TIME_FACTOR

pytestmark = pytest.mark.kafka
TIMEOUT = 30 * TIME_FACTOR


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_orders_flow_over_kafka(
    kafka_bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await orders_flow(kafka_bootstrap_servers, None, monkeypatch)


async def test_orders_flow_over_kafka_with_sasl_ssl(
    kafka_secure_broker: LocalKafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for line in client_settings(kafka_secure_broker, "sasl_ssl"):
        monkeypatch.setenv(*line.split("=", 1))
    security = kafka_secure_broker.client_security("sasl_ssl")
    await orders_flow(os.environ["KAFKA_BOOTSTRAP_SERVERS"], security, monkeypatch)


async def orders_flow(
    bootstrap: str, security: KafkaSecurity | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_GROUP_ID", f"example-{uuid.uuid4().hex[:8]}")
    app = build_app(bootstrap)
    assert [t.name for t in app.transports] == ["memory", "ws", "socketio", "sse", "kafka"]
    port = free_port()
    server = app.server("127.0.0.1", port, log_level="warning")
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        feed = app.get(NotificationFeed)
        handled = asyncio.Event()
        record = feed.add

        def add_and_signal(event: OrderCreated) -> None:
            record(event)
            handled.set()

        feed.add = add_and_signal  # type: ignore[method-assign]
        base = f"http://127.0.0.1:{port}"
        async with (
            websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws,
            httpx.AsyncClient(base_url=base) as http,
            KafkaClient(bootstrap_servers=bootstrap, security=security) as kafka,
        ):
            await ws.send(json.dumps({"event": "subscribe", "data": ["orders.*"]}))
            assert json.loads(await ws.recv())["event"] == "subscribe"
            created = await http.post("/orders", json={"customer": "kim", "total": 4})
            assert created.status_code == 201
            order = created.json()
            async with asyncio.timeout(TIMEOUT):
                pushed = json.loads(await ws.recv())  # via the Kafka relay topic
                assert pushed == {"event": "orders.created", "data": order}
                await handled.wait()  # the Kafka consumer handles it on its own time
            assert (await http.get("/notifications")).json() == ["New order #1 from kim: 4.00"]
            assert await kafka.send("orders.get", 1, timeout=TIMEOUT) == order
    finally:
        server.should_exit = True
        async with asyncio.timeout(TIMEOUT):
            await task

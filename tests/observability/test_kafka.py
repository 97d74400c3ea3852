"""Observability on the real Kafka transport: trace context across two Kafka hops, log
fields of a Kafka request, readiness, retries, dead letters and consumer lag."""

from __future__ import annotations

import asyncio
import logging
import uuid
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
    event_pattern,
    message_pattern,
    module,
)
from framework.observability import Observability, current_message
from framework.transports.kafka import KafkaClient, KafkaTransport
from tests.observability.conftest import LogLines
from tests.observability.hops import PARENT_ID, TRACE_ID, TRACEPARENT
from tests.observability.promtext import sample
from tests.timing import TIME_FACTOR

pytestmark = pytest.mark.kafka

LIMIT = 30 * TIME_FACTOR


def _transport(bootstrap: str, **options: Any) -> KafkaTransport:
    return KafkaTransport(
        bootstrap_servers=bootstrap,
        group_id=f"obs-{uuid.uuid4().hex[:8]}",
        start_timeout=LIMIT,
        retry_backoff=0.01,
        max_retries=1,
        **options,
    )


@asynccontextmanager
async def _http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_trace_crosses_two_kafka_hops_and_logs_name_the_request(
    kafka_bootstrap_servers: str, log_lines: LogLines
) -> None:
    one_topic, two_topic = (f"obs.{uuid.uuid4().hex[:8]}.{n}" for n in ("one", "two"))
    hops: dict[str, Any] = {}
    done = asyncio.Event()

    @controller()
    class Hops:
        def __init__(self, client: ClientProxy) -> None:
            self.client = client  # the app's default client: Kafka

        @message_pattern(one_topic)
        async def one(self, n: int) -> int:
            hops["one"] = current_message()
            logging.getLogger("tests.kafka").info("one got %d", n)
            await self.client.emit(two_topic, n)
            return n + 1

        @event_pattern(two_topic)
        async def two(self, n: int, ctx: MessageContext) -> None:
            hops["two"] = current_message()
            hops["two.header"] = ctx.headers.get("traceparent")
            done.set()

    @module(controllers=[Hops])
    class HopsModule:
        pass

    bootstrap = kafka_bootstrap_servers
    app = create_app(
        HopsModule,
        transports=[_transport(bootstrap)],
        default_client=KafkaClient(bootstrap_servers=bootstrap, default_timeout=LIMIT),
        observability=Observability(),
    )
    async with (
        app,
        KafkaClient(bootstrap_servers=bootstrap, default_timeout=LIMIT) as client,
    ):
        assert await client.send(one_topic, 1, headers={"traceparent": TRACEPARENT}) == 2
        await asyncio.wait_for(done.wait(), LIMIT)
    one, two = hops["one"], hops["two"]
    assert (one.transport, one.trace_id, one.parent_span_id) == ("kafka", TRACE_ID, PARENT_ID)
    assert hops["two.header"] == f"00-{TRACE_ID}-{one.span_id}-01"
    assert (two.transport, two.trace_id, two.parent_span_id) == ("kafka", TRACE_ID, one.span_id)

    line = log_lines.message("one got 1")
    assert line["pattern"] == one_topic
    assert line["transport"] == "kafka"
    assert line["handler"].endswith("Hops.one")
    assert line["correlation_id"] == one.correlation_id is not None
    assert (line["trace_id"], line["span_id"]) == (TRACE_ID, one.span_id)


async def test_readiness_retries_dead_letters_and_lag(kafka_bootstrap_servers: str) -> None:
    prometheus = pytest.importorskip("prometheus_client")

    uid = uuid.uuid4().hex[:8]
    slow_topic, fail_topic = f"obs.{uid}.slow", f"obs.{uid}.fail"
    release, entered, all_slow, dead = (asyncio.Event() for _ in range(4))
    slow_seen: list[int] = []

    @controller()
    class Work:
        @event_pattern(slow_topic)
        async def slow(self, n: int) -> None:
            entered.set()
            await release.wait()
            slow_seen.append(n)
            if len(slow_seen) == 3:
                all_slow.set()

        @event_pattern(fail_topic)
        async def fail(self, n: int) -> None:
            raise RuntimeError("always fails")

        @event_pattern(f"{fail_topic}.dlq")
        async def dead_letters(self, n: int) -> None:
            dead.set()

    @module(controllers=[Work])
    class WorkModule:
        pass

    bootstrap = kafka_bootstrap_servers
    async with KafkaClient(bootstrap_servers=bootstrap, default_timeout=LIMIT) as client:
        # Waiting before the group exists: the first fetch sees all three (lag 3).
        for n in range(3):
            await client.emit(slow_topic, n)
        transport = _transport(bootstrap, auto_offset_reset="earliest")
        app = create_app(
            WorkModule,
            transports=[transport],
            observability=Observability(
                metrics_path="/metrics", registry=prometheus.CollectorRegistry()
            ),
        )
        async with app, _http(app) as http:
            ready = await http.get("/health/ready")
            assert ready.status_code == 200
            assert ready.json() == {"status": "up", "transports": {"memory": "up", "kafka": "up"}}
            assert (await http.get("/health/live")).status_code == 200

            await asyncio.wait_for(entered.wait(), LIMIT)
            text = (await http.get("/metrics")).text
            lag = {"group": transport.group_id, "topic": slow_topic, "partition": "0"}
            assert sample(text, "framework_kafka_consumer_lag", **lag) == 3

            release.set()
            await client.emit(fail_topic, 7)
            await asyncio.wait_for(dead.wait(), LIMIT)
            await asyncio.wait_for(all_slow.wait(), LIMIT)
            text = (await http.get("/metrics")).text

        assert sample(text, "framework_kafka_consumer_lag", **lag) == 0
        fail = {"transport": "kafka", "pattern": fail_topic, "handler": Work.fail.__qualname__}
        assert sample(text, "framework_messages_failed_total", **fail) == 2
        assert sample(text, "framework_messages_retried_total", **fail) == 1
        assert sample(text, "framework_messages_dead_lettered_total", **fail) == 1
        assert sample(text, "framework_messages_handled_total", **fail) == 0
        slow = {"transport": "kafka", "pattern": slow_topic, "handler": Work.slow.__qualname__}
        assert sample(text, "framework_messages_handled_total", **slow) == 3
        assert sample(text, "framework_handler_duration_seconds_count", **slow) == 3


async def test_window_state_and_late_records_are_metrics(kafka_bootstrap_servers: str) -> None:
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

    from framework.transports.kafka import TumblingWindow

    prometheus = pytest.importorskip("prometheus_client")
    topic = f"obs.win.{uuid.uuid4().hex[:8]}"
    counted = asyncio.Event()

    @controller()
    class Windows:
        @event_pattern(topic, emits=f"{topic}.out", window=TumblingWindow(10))
        async def count(self, n: int) -> int:
            counted.set()
            return n

    @module(controllers=[Windows])
    class WindowsModule:
        pass

    bootstrap = kafka_bootstrap_servers
    transport = _transport(bootstrap, auto_offset_reset="earliest")
    app = create_app(
        WindowsModule,
        transports=[transport],
        observability=Observability(
            metrics_path="/metrics", registry=prometheus.CollectorRegistry()
        ),
    )
    base = 1_700_000_000_000
    async with app, _http(app) as http:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for ts in (base, base + 20_000, base + 1):  # the last one is late
                await producer.send_and_wait(topic, b"1", key=b"k", timestamp_ms=ts)
        finally:
            await producer.stop()
        group = {"group": transport.group_id}
        async with asyncio.timeout(LIMIT):
            while transport.window_stats()["late_records"] < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        text = (await http.get("/metrics")).text
    assert counted.is_set()
    assert sample(text, "framework_kafka_windows_closed_total", **group) == 1
    assert sample(text, "framework_kafka_late_records_total", **group) == 1
    assert sample(text, "framework_kafka_state_size", **group) == 1

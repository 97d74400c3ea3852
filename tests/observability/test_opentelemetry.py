"""OpenTelemetry spans (the ``otel`` extra): one per handling, parented by the incoming
``traceparent``, and the parent of every message the handler sends."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from framework import (
    ClientProxy,
    ConfigurationError,
    MessageContext,
    RemoteError,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
)
from framework.observability import Observability, current_message
from tests.observability.hops import PARENT_ID, TRACE_ID, TRACEPARENT, HopsModule, Seen
from tests.timing import TIME_FACTOR

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

LIMIT = 10 * TIME_FACTOR


def _provider(exporter: InMemorySpanExporter, service: str) -> TracerProvider:
    """A service's tracer provider, exporting to ``exporter`` as each span ends."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _ids(span: ReadableSpan) -> tuple[str, str]:
    """``(trace id, span id)`` of a span, as W3C hex."""
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def _parent(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


def _span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


@dataclass(frozen=True)
class Saw:
    """What a handler saw: its scope's ids and the ``traceparent`` it was sent with."""

    trace_id: str | None
    span_id: str | None
    parent_span_id: str | None
    header: Any


def _saw(ctx: MessageContext) -> Saw:
    scope = current_message()
    assert scope is not None
    return Saw(scope.trace_id, scope.span_id, scope.parent_span_id, ctx.headers.get("traceparent"))


async def test_two_services_on_memory_chain_their_spans() -> None:
    exporter = InMemorySpanExporter()
    a_provider, b_provider = _provider(exporter, "a"), _provider(exporter, "b")
    seen: dict[str, Saw] = {}
    audited = asyncio.Event()

    @controller()
    class B:
        @message_pattern("b.price")
        async def price(self, n: int, ctx: MessageContext) -> int:
            seen["price"] = _saw(ctx)
            return n * 10

        @event_pattern("b.audit")
        async def audit(self, n: int, ctx: MessageContext) -> None:
            seen["audit"] = _saw(ctx)
            audited.set()

    @controller()
    class A:
        def __init__(self, b: ClientProxy) -> None:
            self.b = b

        @message_pattern("a.order")
        async def order(self, n: int) -> int:
            price: int = await self.b.send("b.price", n)
            # A span of the handler's own: what it sends from inside has it as parent.
            with a_provider.get_tracer("tests").start_as_current_span("a.audit-step"):
                await self.b.emit("b.audit", n)
            return price

    @module(controllers=[B])
    class BModule:
        pass

    @module(controllers=[A])
    class AModule:
        pass

    async with create_app(BModule, observability=Observability(tracer_provider=b_provider)) as b:
        a = create_app(
            AModule,
            default_client=b.memory.create_client(),
            observability=Observability(tracer_provider=a_provider),
        )
        async with a:
            to_a = a.memory.create_client()
            headers = {"traceparent": TRACEPARENT, "x-correlation-id": "order-3"}
            assert await to_a.send("a.order", 3, headers=headers) == 30
            await asyncio.wait_for(audited.wait(), LIMIT)

    order, price = _span(exporter, "process a.order"), _span(exporter, "process b.price")
    step, audit = _span(exporter, "a.audit-step"), _span(exporter, "process b.audit")
    trace_id, order_id = _ids(order)
    # The incoming traceparent is A's parent; every span is in its trace.
    assert (trace_id, _parent(order)) == (TRACE_ID, PARENT_ID)
    assert order.parent is not None and order.parent.is_remote
    assert {_ids(s)[0] for s in (price, step, audit)} == {TRACE_ID}
    assert (order.kind, price.kind, audit.kind) == (
        SpanKind.SERVER,
        SpanKind.SERVER,
        SpanKind.CONSUMER,
    )
    assert order.resource.attributes["service.name"] == "a"
    assert audit.resource.attributes["service.name"] == "b"

    # B's request span is a child of A's; the event sent inside A's own span, of that.
    assert _parent(price) == order_id
    assert _parent(step) == order_id
    assert _parent(audit) == _ids(step)[1]
    assert seen["price"].header == f"00-{TRACE_ID}-{order_id}-01"
    assert seen["audit"].header == f"00-{TRACE_ID}-{_ids(step)[1]}-01"
    # What handlers (and their log lines) see is the exported span.
    assert (seen["price"].trace_id, seen["price"].span_id) == _ids(price)
    assert seen["price"].parent_span_id == order_id

    assert dict(order.attributes or {}) == {
        "messaging.system": "memory",
        "messaging.destination.name": "a.order",
        "messaging.operation": "process",
        "messaging.operation.type": "process",
        "messaging.message.conversation_id": "order-3",
        "framework.handler": A.order.__qualname__,
    }
    assert (audit.attributes or {})["messaging.destination.name"] == "b.audit"
    assert all(s.status.status_code is StatusCode.UNSET for s in (order, price, audit))


async def test_a_raising_handler_ends_its_span_with_error_status() -> None:
    exporter = InMemorySpanExporter()

    @controller()
    class Stock:
        @message_pattern("stock.reserve")
        async def reserve(self, n: int) -> int:
            raise ValueError(f"no stock for {n}")

    @module(controllers=[Stock])
    class StockModule:
        pass

    provider = _provider(exporter, "stock")
    async with create_app(
        StockModule, observability=Observability(tracer_provider=provider)
    ) as app:
        with pytest.raises(RemoteError):
            await app.client.send("stock.reserve", 5)

    span = _span(exporter, "process stock.reserve")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: no stock for 5"
    [event] = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ValueError"
    assert (event.attributes or {})["exception.message"] == "no stock for 5"


async def test_a_streamed_reply_is_one_span_that_ends_with_the_stream() -> None:
    exporter = InMemorySpanExporter()
    item_spans: list[str | None] = []

    @controller()
    class Counter:
        @message_pattern("count")
        async def count(self, n: int) -> AsyncIterator[int]:
            for i in range(n):
                scope = current_message()
                item_spans.append(scope.span_id if scope else None)
                yield i

    @module(controllers=[Counter])
    class CounterModule:
        pass

    provider = _provider(exporter, "counter")
    async with create_app(
        CounterModule, observability=Observability(tracer_provider=provider)
    ) as app:
        items = []
        async for item in app.client.stream("count", 3):
            items.append(item)
            if len(items) < 3:
                assert not exporter.get_finished_spans()  # still streaming
    assert items == [0, 1, 2]
    span = _span(exporter, "process count")
    assert item_spans == [_ids(span)[1]] * 3
    assert span.status.status_code is StatusCode.UNSET


async def test_http_request_span_parents_the_messages_it_sends() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter, "hops")
    async with create_app(HopsModule, observability=Observability(tracer_provider=provider)) as app:
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/hops/start", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200
        seen = app.get(Seen)
        await asyncio.wait_for(seen.done.wait(), LIMIT)

    request = _span(exporter, "GET /hops/start")
    one, two = _span(exporter, "process hop.one"), _span(exporter, "process hop.two")
    assert request.kind is SpanKind.SERVER
    assert (_ids(request)[0], _parent(request)) == (TRACE_ID, PARENT_ID)
    assert dict(request.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/hops/start",
        "url.scheme": "http",
        "http.route": "/hops/start",
        "http.response.status_code": 200,
    }
    assert _parent(one) == _ids(request)[1]
    assert _parent(two) == _ids(one)[1]
    assert seen.hops["one"].span_id == _ids(one)[1]


async def test_without_an_sdk_the_trace_context_is_still_carried() -> None:
    # The API alone makes no spans; the framework's own ids stand in.
    observability = Observability(tracer_provider=NoOpTracerProvider())
    async with create_app(HopsModule, observability=observability) as app:
        await app.client.send("hop.one", 1, headers={"traceparent": TRACEPARENT})
        seen = app.get(Seen)
        await asyncio.wait_for(seen.done.wait(), LIMIT)
    one, two = seen.hops["one"], seen.hops["two"]
    assert (one.trace_id, one.parent_span_id) == (TRACE_ID, PARENT_ID)
    assert one.span_id not in (None, PARENT_ID)
    assert (two.trace_id, two.parent_span_id) == (TRACE_ID, one.span_id)
    assert two.traceparent_header == f"00-{TRACE_ID}-{one.span_id}-01"


def test_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="needs tracing=True"):
        Observability(opentelemetry=True, tracing=False)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'framework\[otel\]'"):
        Observability(opentelemetry=True)
    Observability()  # off: nothing is imported


@pytest.mark.kafka
async def test_spans_cross_kafka(kafka_bootstrap_servers: str) -> None:
    from framework.transports.kafka import KafkaClient, KafkaTransport

    limit = 30 * TIME_FACTOR
    one_topic, two_topic = (f"otel.{uuid.uuid4().hex[:8]}.{n}" for n in ("one", "two"))
    exporter = InMemorySpanExporter()
    seen: dict[str, Any] = {}
    done = asyncio.Event()

    @controller()
    class Hops:
        def __init__(self, client: ClientProxy) -> None:
            self.client = client  # the app's default client: Kafka

        @message_pattern(one_topic)
        async def one(self, n: int) -> int:
            seen["one"] = current_message()
            await self.client.emit(two_topic, n)
            return n + 1

        @event_pattern(two_topic)
        async def two(self, n: int, ctx: MessageContext) -> None:
            seen["two"] = _saw(ctx)
            done.set()

    @module(controllers=[Hops])
    class KafkaHops:
        pass

    bootstrap = kafka_bootstrap_servers
    transport = KafkaTransport(
        bootstrap_servers=bootstrap, group_id=f"otel-{uuid.uuid4().hex[:8]}", start_timeout=limit
    )
    app = create_app(
        KafkaHops,
        transports=[transport],
        default_client=KafkaClient(bootstrap_servers=bootstrap, default_timeout=limit),
        observability=Observability(tracer_provider=_provider(exporter, "kafka-hops")),
    )
    async with (
        app,
        KafkaClient(bootstrap_servers=bootstrap, default_timeout=limit) as client,
    ):
        assert await client.send(one_topic, 1, headers={"traceparent": TRACEPARENT}) == 2
        await asyncio.wait_for(done.wait(), limit)

    one, two = _span(exporter, f"process {one_topic}"), _span(exporter, f"process {two_topic}")
    one_id = _ids(one)[1]
    assert (one.kind, two.kind) == (SpanKind.SERVER, SpanKind.CONSUMER)
    assert (_ids(one)[0], _parent(one)) == (TRACE_ID, PARENT_ID)
    assert (_ids(two)[0], _parent(two)) == (TRACE_ID, one_id)
    assert seen["two"].header == f"00-{TRACE_ID}-{one_id}-01"
    assert seen["one"].span_id == one_id
    attributes = dict(one.attributes or {})
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.destination.name"] == one_topic
    assert attributes["messaging.destination.partition.id"] == "0"
    assert isinstance(attributes["messaging.kafka.offset"], int)
    correlation = seen["one"].correlation_id
    assert correlation is not None
    assert attributes["messaging.message.conversation_id"] == correlation
    assert "messaging.message.conversation_id" not in (two.attributes or {})


async def test_an_sse_post_handler_is_a_child_of_its_http_request() -> None:
    from framework.transports.sse import SseTransport

    exporter = InMemorySpanExporter()
    app = create_app(
        HopsModule,
        transports=[SseTransport("/events")],
        observability=Observability(tracer_provider=_provider(exporter, "sse")),
    )
    async with app:
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.post(
                "/events/hop.one", content=b"1", headers={"traceparent": TRACEPARENT}
            )
        assert response.json() == 2
        await asyncio.wait_for(app.get(Seen).done.wait(), LIMIT)

    request, one = _span(exporter, "POST /events/{pattern}"), _span(exporter, "process hop.one")
    assert _parent(request) == PARENT_ID
    assert _parent(one) == _ids(request)[1]  # not a sibling of it under PARENT_ID
    assert (one.attributes or {})["messaging.system"] == "sse"

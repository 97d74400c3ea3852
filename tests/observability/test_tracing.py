"""W3C trace context travels from the incoming message to every message a handler sends."""

from __future__ import annotations

import asyncio

import httpx

from framework import create_app
from framework.messaging.context import MessageContext
from framework.observability import MessageScope, Observability
from framework.observability._context import CURRENT
from framework.transports.websocket import WebSocketClient, WebSocketTransport
from tests.observability.hops import PARENT_ID, TRACE_ID, TRACEPARENT, HopsModule, Seen
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running

LIMIT = 10 * TIME_FACTOR


async def _both_hops(seen: Seen) -> None:
    await asyncio.wait_for(seen.done.wait(), LIMIT)


async def test_memory_two_hops_keep_the_trace_and_chain_the_spans() -> None:
    async with create_app(HopsModule, observability=Observability()) as app:
        assert await app.client.send("hop.one", 1, headers={"traceparent": TRACEPARENT}) == 2
        seen = app.get(Seen)
        await _both_hops(seen)
    one, two = seen.hops["one"], seen.hops["two"]
    assert (one.transport, one.trace_id, one.parent_span_id) == ("memory", TRACE_ID, PARENT_ID)
    # The event hop.one emitted carries hop.one's own span as its parent.
    assert two.traceparent_header == f"00-{TRACE_ID}-{one.span_id}-01"
    assert (two.trace_id, two.parent_span_id) == (TRACE_ID, one.span_id)
    assert len({PARENT_ID, one.span_id, two.span_id}) == 3


async def test_a_message_without_trace_context_starts_a_trace() -> None:
    async with create_app(HopsModule, observability=Observability()) as app:
        await app.client.send("hop.one", 1)
        seen = app.get(Seen)
        await _both_hops(seen)
    one, two = seen.hops["one"], seen.hops["two"]
    assert one.traceparent_header is None and one.parent_span_id is None
    assert one.trace_id is not None and len(one.trace_id) == 32
    assert (two.trace_id, two.parent_span_id) == (one.trace_id, one.span_id)


async def test_a_malformed_traceparent_is_replaced_by_a_new_trace() -> None:
    bad = f"00-{'0' * 32}-{PARENT_ID}-01"  # an all-zero trace id is invalid
    async with create_app(HopsModule, observability=Observability()) as app:
        await app.client.send("hop.one", 1, headers={"traceparent": bad})
        seen = app.get(Seen)
        await _both_hops(seen)
    assert seen.hops["one"].trace_id not in (None, "0" * 32)
    assert seen.hops["two"].trace_id == seen.hops["one"].trace_id


async def test_http_request_trace_reaches_message_handlers() -> None:
    async with create_app(HopsModule, observability=Observability()) as app:
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/hops/start", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200
        seen = app.get(Seen)
        await _both_hops(seen)
    one, two = seen.hops["one"], seen.hops["two"]
    assert one.trace_id == two.trace_id == TRACE_ID
    # hop.one's parent is the HTTP request's span, not the caller's.
    assert one.parent_span_id not in (None, PARENT_ID)
    assert two.parent_span_id == one.span_id


async def test_without_tracing_nothing_is_added_to_outgoing_messages() -> None:
    async with create_app(HopsModule, observability=Observability(tracing=False)) as app:
        await app.client.send("hop.one", 1)
        seen = app.get(Seen)
        await _both_hops(seen)
    assert seen.hops["two"].traceparent_header is None
    assert seen.hops["two"].trace_id is None


async def test_websocket_frame_headers_carry_the_trace() -> None:
    app = create_app(
        HopsModule, transports=[WebSocketTransport("/ws")], observability=Observability()
    )
    async with (
        uvicorn_running(app) as port,
        WebSocketClient(f"ws://127.0.0.1:{port}/ws") as client,
    ):
        assert await client.send("hop.one", 1, headers={"traceparent": TRACEPARENT}) == 2
        seen = app.get(Seen)
        await _both_hops(seen)
    one, two = seen.hops["one"], seen.hops["two"]
    assert (one.transport, one.trace_id, one.parent_span_id) == ("ws", TRACE_ID, PARENT_ID)
    assert (two.transport, two.trace_id, two.parent_span_id) == ("memory", TRACE_ID, one.span_id)


async def test_memory_clients_made_later_trace_too_and_nothing_is_left_after_stop() -> None:
    async with create_app(HopsModule, observability=Observability()) as app:
        later = app.memory.create_client()
        # As inside a handler of a message that came with TRACEPARENT:
        caller = MessageScope(
            MessageContext("x", "memory", {"traceparent": TRACEPARENT}), "X", True
        )
        token = CURRENT.set(caller)
        try:
            await later.send("hop.one", 1)  # no headers: the client adds the trace
        finally:
            CURRENT.reset(token)
        seen = app.get(Seen)
        await _both_hops(seen)
        assert (seen.hops["one"].trace_id, seen.hops["one"].parent_span_id) == (
            TRACE_ID,
            caller.span_id,
        )
    # Tracing gave the memory clients a header hook; stopping took it away.
    assert app.client.header_hooks == later.header_hooks == ()
    assert app.memory.client_header_hooks == ()

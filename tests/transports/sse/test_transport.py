"""``SseTransport`` on uvicorn with httpx clients: subscriptions and fan-out, heartbeats,
slow clients, resume and reset, guards, and ``POST`` dispatch."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import BaseModel

from framework import (
    Application,
    ExecutionContext,
    MessageContext,
    RpcException,
    controller,
    create_app,
    event_pattern,
    injectable,
    message_pattern,
    module,
)
from framework.transports.sse import SseTransport
from tests.transports.sse.conftest import TIMEOUT, Reader, seq, serving, subscribe, wait_until


class Order(BaseModel):
    id: int
    total: float


@injectable()
class Inbox:
    def __init__(self) -> None:
        self.created: list[int] = []
        self.arrived = asyncio.Event()
        self.watching = asyncio.Event()
        self.closed = asyncio.Event()


@controller()
class OrdersController:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    @message_pattern("orders.get")
    async def get_order(self, order: Order) -> Order:
        return Order(id=order.id, total=order.total * 2)

    @message_pattern("orders.where")
    async def where(self, payload: dict[str, object], ctx: MessageContext) -> dict[str, str]:
        return {"transport": ctx.transport, "pattern": ctx.pattern}

    @message_pattern("orders.reject")
    async def reject(self, payload: dict[str, object]) -> None:
        raise RpcException("order 7 is closed")

    @message_pattern("orders.fail")
    async def fail(self, payload: dict[str, object]) -> None:
        raise RuntimeError("secret internals")

    @message_pattern("orders.count")
    async def count(self, n: int) -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            yield {"i": i}

    @message_pattern("orders.watch")
    async def watch(self, payload: dict[str, object]) -> AsyncIterator[dict[str, int]]:
        try:
            yield {"i": 0}
            self.inbox.watching.set()
            await asyncio.Event().wait()  # until the client leaves
            yield {"i": 1}
        finally:
            self.inbox.closed.set()

    @message_pattern("echo.*")
    async def echo(self, payload: int, ctx: MessageContext) -> dict[str, object]:
        return {"length": len(ctx.pattern), "payload": payload}

    @event_pattern("orders.created")
    async def created(self, order: Order) -> None:
        self.inbox.created.append(order.id)
        self.inbox.arrived.set()


@module(controllers=[OrdersController], providers=[Inbox])
class OrdersModule:
    pass


class CookieGuard:
    """Lets a request in when it carries the session cookie or bearer token."""

    def __init__(self) -> None:
        self.seen: list[ExecutionContext] = []

    async def can_activate(self, ctx: ExecutionContext) -> bool:
        self.seen.append(ctx)
        request = ctx.context
        return bool(
            request.cookies.get("session") == "s3cret"
            or request.headers.get("authorization") == "Bearer s3cret"
        )


def make_app(**options: object) -> tuple[Application, SseTransport]:
    transport = SseTransport("/events", **options)  # type: ignore[arg-type]
    return create_app(OrdersModule, transports=[transport]), transport


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        yield client


async def test_subscribers_receive_matching_events_once(client: httpx.AsyncClient) -> None:
    app, transport = make_app(retry_ms=500)
    first = "/events?subscribe=orders.*,chat.room1"
    second = "/events?subscribe=chat.room1&subscribe=orders.%23"  # '#' escaped in a URL
    async with (
        serving(app) as url,
        subscribe(client, url + first) as (res, a, _),
        subscribe(client, url + second) as (_, b, _),
    ):
        assert res.headers["content-type"] == "text/event-stream"
        assert res.headers["cache-control"] == "no-cache"
        assert res.headers["x-accel-buffering"] == "no"
        await wait_until(lambda: transport.subscriber_count == 2)
        await app.publish("orders.created", Order(id=1, total=2.0))
        await app.publish("orders.eu.created", {"id": 2})
        await app.publish("chat.room1", "hello\nworld")
        await app.publish("chat.room2", "not for them")
        await a.wait_for(lambda r: len(r.events) == 2)
        await b.wait_for(lambda r: len(r.events) == 3)
    assert a.retry == 500
    assert [(e.event, seq(e.id), e.data) for e in a.events] == [
        ("orders.created", "1", '{"id":1,"total":2.0}'),
        ("chat.room1", "3", '"hello\\nworld"'),
    ]
    assert [seq(e.id) for e in b.events] == ["1", "2", "3"]


async def test_wire_format_of_a_published_event(client: httpx.AsyncClient) -> None:
    app, transport = make_app(retry_ms=None)
    async with (
        serving(app) as url,
        client.stream("GET", f"{url}/events?subscribe=orders.created") as response,
    ):
        await wait_until(lambda: transport.subscriber_count == 1)
        await app.publish("orders.created", {"id": 1, "note": "caf\u00e9"})
        chunks = response.aiter_raw()
        raw = b""
        async with asyncio.timeout(TIMEOUT):
            while not raw.endswith(b"\n\n"):
                raw += await anext(chunks)
    event_id = f"{app.event_id_prefix}1".encode()
    assert raw == (
        b"event: orders.created\nid: " + event_id + b'\ndata: {"id":1,"note":"caf\xc3\xa9"}\n\n'
    )


async def test_idle_streams_get_heartbeat_comments(client: httpx.AsyncClient) -> None:
    app, _ = make_app(heartbeat=0.1)
    async with (
        serving(app) as url,
        subscribe(client, f"{url}/events?subscribe=x") as (_, reader, _),
    ):
        await reader.wait_for(lambda r: r.comments.count("ping") >= 2)
    assert reader.events == []


async def test_disconnected_clients_are_forgotten(client: httpx.AsyncClient) -> None:
    app, transport = make_app()
    async with serving(app) as url:
        async with subscribe(client, f"{url}/events?subscribe=x"):
            await wait_until(lambda: transport.subscriber_count == 1)
        await wait_until(lambda: transport.subscriber_count == 0)
        await wait_until(
            lambda: not [t for t in asyncio.all_tasks() if t.get_name().startswith("sse-watch")]
        )


async def test_bad_subscriptions_are_refused(client: httpx.AsyncClient) -> None:
    app, _ = make_app(max_patterns=2, max_subscribers=1)
    async with serving(app) as url:
        missing = await client.get(f"{url}/events")
        too_many = await client.get(f"{url}/events?subscribe=a,b,c")
        invalid = await client.get(f"{url}/events?subscribe=a.%23.b")
        async with subscribe(client, f"{url}/events?subscribe=a"):
            full = await client.get(f"{url}/events?subscribe=a")
    assert (missing.status_code, too_many.status_code, invalid.status_code) == (400, 400, 400)
    assert "subscribe=" in missing.json()["message"]
    assert full.status_code == 503


async def test_streams_per_client_address_and_pattern_length_are_bounded(
    client: httpx.AsyncClient,
) -> None:
    app, transport = make_app(max_subscribers_per_client=2)
    async with serving(app) as url:
        long = await client.get(f"{url}/events?subscribe={'a' * 257}")
        assert long.status_code == 400
        assert long.json()["message"] == "A subscribed pattern has at most 256 characters"
        async with (
            subscribe(client, f"{url}/events?subscribe={'a' * 256}"),
            subscribe(client, f"{url}/events?subscribe=b"),
        ):
            third = await client.get(f"{url}/events?subscribe=c")
            assert third.status_code == 429
            assert third.json()["message"] == "Too many event streams from this address"
        await wait_until(lambda: transport.subscriber_count == 0)
        async with subscribe(client, f"{url}/events?subscribe=c"):  # places are free again
            await wait_until(lambda: transport.subscriber_count == 1)


async def test_a_slow_client_is_dropped_and_the_others_get_everything(
    client: httpx.AsyncClient,
) -> None:
    app, transport = make_app(max_buffer=8, heartbeat=None)
    async with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(stalled, ("127.0.0.1", port))
            await loop.sock_sendall(
                stalled, b"GET /events?subscribe=big HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            async with subscribe(client, f"{url}/events?subscribe=big") as (_, fast, _):
                await wait_until(lambda: transport.subscriber_count == 2)
                blob = "x" * 65536
                sent = 0
                # Publish until the stalled client is dropped; the reading one keeps up.
                while transport.subscriber_count == 2:
                    assert sent < 2000, "the stalled client was never dropped"
                    sent += 1
                    await app.publish("big", {"i": sent, "blob": blob})
                    await fast.wait_for(lambda r, n=sent: len(r.events) == n)  # type: ignore[misc]
                for _ in range(3):
                    sent += 1
                    await app.publish("big", {"i": sent, "blob": blob})
                await fast.wait_for(lambda r, n=sent: len(r.events) == n)  # type: ignore[misc]
            assert [json.loads(e.data)["i"] for e in fast.events] == list(range(1, sent + 1))
        finally:
            stalled.close()


async def test_resume_with_last_event_id_replays_what_was_missed(
    client: httpx.AsyncClient,
) -> None:
    app, transport = make_app()
    async with serving(app) as url:
        for i in range(1, 6):
            await app.publish("orders.created" if i != 3 else "chat.room1", {"i": i})
        headers = {"Last-Event-ID": f"{app.event_id_prefix}2"}
        async with subscribe(client, f"{url}/events?subscribe=orders.*", headers) as (_, r, _):
            await r.wait_for(lambda r: len(r.events) == 2)
            await app.publish("orders.created", {"i": 6})
            await r.wait_for(lambda r: len(r.events) == 3)
        # The query parameter works too (for clients that cannot set headers).
        async with subscribe(
            client, f"{url}/events?subscribe=orders.*&lastEventId={app.event_id_prefix}5"
        ) as (
            _,
            q,
            _,
        ):
            await q.wait_for(lambda r: len(r.events) == 1)
    assert [seq(e.id) for e in r.events] == ["4", "5", "6"]
    assert [seq(e.id) for e in q.events] == ["6"]
    assert transport.subscriber_count == 0


async def test_reset_when_the_missed_events_are_gone(client: httpx.AsyncClient) -> None:
    app, _ = make_app(replay_size=3)
    async with serving(app) as url:
        for i in range(1, 6):
            await app.publish("orders.created", {"i": i})
        headers = {"Last-Event-ID": f"{app.event_id_prefix}1"}
        async with subscribe(client, f"{url}/events?subscribe=orders.*", headers) as (_, r, _):
            await r.wait_for(lambda r: len(r.events) == 1)
            await app.publish("orders.created", {"i": 6})
            await r.wait_for(lambda r: len(r.events) == 2)
    reset = r.events[0]
    assert reset.event == "reset"
    assert seq(reset.id) == "5", "the reset moves the client's last id past the gap"
    assert json.loads(reset.data)["lastEventId"] == f"{app.event_id_prefix}1"
    assert (r.events[1].event, seq(r.events[1].id)) == ("orders.created", "6")


async def test_guards_protect_subscriptions_and_posts(client: httpx.AsyncClient) -> None:
    guard = CookieGuard()
    app, _ = make_app(guards=[guard])
    async with serving(app) as url:
        refused = await client.get(f"{url}/events?subscribe=x")
        refused_post = await client.post(f"{url}/events/orders.get", json={"id": 1, "total": 1})
        cookie = {"Cookie": "session=s3cret"}
        async with subscribe(client, f"{url}/events?subscribe=x", cookie) as (ok, _, _):
            assert ok.status_code == 200
        bearer = await client.post(
            f"{url}/events/orders.get",
            json={"id": 1, "total": 1},
            headers={"Authorization": "Bearer s3cret"},
        )
    assert refused.status_code == 403 and refused.json()["message"] == "Forbidden resource"
    assert refused_post.status_code == 403
    assert bearer.status_code == 200
    ctx = guard.seen[0]
    assert (ctx.kind, ctx.transport, ctx.pattern) == ("http", "sse", "/events")
    assert ctx.context.url.path == "/events"


async def test_post_dispatches_messages_and_events(client: httpx.AsyncClient) -> None:
    app, _ = make_app()
    async with serving(app) as url:
        reply = await client.post(f"{url}/events/orders.get", json={"id": 3, "total": 1.5})
        where = await client.post(f"{url}/events/orders.where", json={})
        event = await client.post(f"{url}/events/orders.created", json={"id": 9, "total": 1})
        stream = await client.post(f"{url}/events/orders.count", json=3)
        inbox = app.get(Inbox)
    assert (reply.status_code, reply.json()) == (200, {"id": 3, "total": 3.0})
    assert where.json() == {"transport": "sse", "pattern": "orders.where"}
    assert (event.status_code, event.content) == (202, b"")
    assert inbox.created == [9]
    assert stream.headers["content-type"] == "text/event-stream"
    reader = Reader()
    for line in stream.text.splitlines():
        reader.feed_line(line)
    reader.feed_line("")
    assert [json.loads(e.data) for e in reader.events] == [{"i": 0}, {"i": 1}, {"i": 2}]


async def test_post_errors_map_like_http(client: httpx.AsyncClient) -> None:
    app, _ = make_app(max_body=64)
    async with serving(app) as url:
        unknown = await client.post(f"{url}/events/orders.nope", json={})
        invalid = await client.post(f"{url}/events/orders.get", json={"id": "x"})
        malformed = await client.post(f"{url}/events/orders.get", content=b"{nope")
        rejected = await client.post(f"{url}/events/orders.reject", json={})
        failed = await client.post(f"{url}/events/orders.fail", json={})
        too_big = await client.post(f"{url}/events/orders.get", content=b"1" * 65)
    assert unknown.status_code == 404
    assert unknown.json()["message"] == (
        "There is no matching message handler defined in the remote service."
    )
    assert invalid.status_code == 422 and invalid.json()["message"] == "Validation failed"
    assert malformed.status_code == 422
    assert malformed.json()["message"] == "Malformed JSON payload"
    assert rejected.status_code == 400
    assert rejected.json()["message"] == "order 7 is closed"
    assert failed.status_code == 500
    assert failed.json()["message"] == "Internal server error"
    assert "secret" not in failed.text
    assert too_big.status_code == 413


async def test_a_client_leaving_a_post_stream_closes_the_handlers_generator(
    client: httpx.AsyncClient,
) -> None:
    app, _ = make_app(heartbeat=60)  # noticed from the disconnect, not a heartbeat
    async with serving(app) as url:
        inbox = app.get(Inbox)
        reader = Reader()
        async with client.stream("POST", f"{url}/events/orders.watch", json={}) as response:
            assert response.headers["content-type"] == "text/event-stream"
            async for line in response.aiter_lines():
                reader.feed_line(line)
                if reader.events:
                    break
            async with asyncio.timeout(TIMEOUT):
                await inbox.watching.wait()
            assert not inbox.closed.is_set()
        async with asyncio.timeout(TIMEOUT):
            await inbox.closed.wait()
    assert [json.loads(e.data) for e in reader.events] == [{"i": 0}]


async def test_many_long_pattern_names_are_not_cached(client: httpx.AsyncClient) -> None:
    # A sender inventing long names must not make the server keep them (issue 15).
    app, transport = make_app()
    long_tail = "x" * 4096
    async with serving(app) as url:
        unknown = {
            (await client.post(f"{url}/events/nope.{i}.{long_tail}", json={})).status_code
            for i in range(300)
        }
        served = await client.post(f"{url}/events/echo.{long_tail}", json=5)
        short = await client.post(f"{url}/events/orders.get", json={"id": 1, "total": 1})
        cached = list(transport._dispatcher._routes)
    assert unknown == {404}
    assert served.status_code == 200 and served.json() == {"length": 4101, "payload": 5}
    assert short.status_code == 200
    assert cached == ["orders.get"], "only the short name is cached"
    # The router keeps no lookup cache of its own: the dispatcher's is the only one.
    assert not [v for v in vars(transport.host.router).values() if isinstance(v, dict)]


async def test_stop_ends_open_streams_cleanly(client: httpx.AsyncClient) -> None:
    app, transport = make_app()
    async with (
        serving(app) as url,
        subscribe(client, f"{url}/events?subscribe=x") as (_, reader, task),
    ):
        await wait_until(lambda: transport.subscriber_count == 1)
        await app.publish("x", 1)
        await app.stop()
        async with asyncio.timeout(TIMEOUT):
            await task  # the server ended the response: the read loop finishes
        assert [e.data for e in reader.events] == ["1"]
        after = await client.get(f"{url}/events?subscribe=x")
        assert after.status_code == 503


async def test_drain_ends_streams_and_refuses_new_ones(client: httpx.AsyncClient) -> None:
    app, transport = make_app()
    async with serving(app) as url:
        async with subscribe(client, f"{url}/events?subscribe=x") as (_, reader, task):
            await wait_until(lambda: transport.subscriber_count == 1)
            await app.publish("x", 1)
            await transport.drain()
            async with asyncio.timeout(TIMEOUT):
                await task
        refused = await client.get(f"{url}/events?subscribe=x")
        posted = await client.post(f"{url}/events/orders.get", json={"id": 1, "total": 1})
    assert [e.data for e in reader.events] == ["1"]
    assert refused.status_code == 503
    assert posted.status_code == 200, "in-flight and keep-alive POSTs are still served"


async def test_a_resume_longer_than_the_client_bound_resets(client: httpx.AsyncClient) -> None:
    # Issue 15 defect 4: a replay used to be one copy per client outside max_buffer.
    app, _ = make_app(replay_size=100, max_buffer=8)
    async with serving(app) as url:
        for i in range(1, 31):
            await app.publish("orders.created", {"i": i})
        far = {"Last-Event-ID": f"{app.event_id_prefix}1"}
        async with subscribe(client, f"{url}/events?subscribe=orders.*", far) as (_, r, _):
            await r.wait_for(lambda r: len(r.events) == 1)
            await app.publish("orders.created", {"i": 31})
            await r.wait_for(lambda r: len(r.events) == 2)
        near = {"Last-Event-ID": f"{app.event_id_prefix}25"}
        async with subscribe(client, f"{url}/events?subscribe=orders.*", near) as (_, q, _):
            await q.wait_for(lambda r: len(r.events) == 6)
    reset = r.events[0]
    assert reset.event == "reset" and seq(reset.id) == "30"
    assert "max_buffer" in json.loads(reset.data)["reason"]
    assert seq(r.events[1].id) == "31"
    assert [seq(e.id) for e in q.events] == ["26", "27", "28", "29", "30", "31"]

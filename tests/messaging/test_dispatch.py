"""The dispatcher: one inbound message in, one outcome out, on a compiled router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from framework import (
    MessageContext,
    RpcException,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
)
from framework.messaging._cache import MAX_CACHED_NAME
from framework.messaging.dispatch import (
    NOT_FOUND,
    Dispatcher,
    Failure,
    Handled,
    Inbound,
    Reply,
    Stream,
)
from framework.messaging.responses import WsResponse


class Order(BaseModel):
    id: int


seen: list[tuple[str, Any]] = []


@controller()
class Orders:
    @message_pattern("orders.get")
    async def get(self, order: Order) -> dict[str, int]:
        return {"id": order.id}

    @message_pattern("orders.*")
    async def any_order(self, payload: Any, ctx: MessageContext) -> str:
        return ctx.pattern

    @message_pattern("orders.watch")
    async def watch(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @message_pattern("orders.renamed")
    async def renamed(self, payload: Any) -> WsResponse:
        return WsResponse("orders.other", payload)

    @message_pattern("orders.refuse")
    async def refuse(self, payload: Any) -> None:
        raise RpcException("closed")

    @message_pattern("ws.only", transports=["ws"])
    async def ws_only(self, payload: Any) -> int:
        return 1

    @event_pattern("orders.created")
    async def first(self, order: Order, ctx: MessageContext) -> None:
        seen.append(("first", ctx))

    @event_pattern("orders.created")
    async def second(self, order: Order, ctx: MessageContext) -> None:
        seen.append(("second", ctx))
        raise RuntimeError("second fails")

    @event_pattern("orders.created")
    async def third(self, order: Order) -> None:
        seen.append(("third", order.id))


@module(controllers=[Orders])
class OrdersModule:
    pass


async def dispatcher(**options: Any) -> Dispatcher:
    app = create_app(OrdersModule)
    await app.start()
    try:
        return Dispatcher(app.router, "memory", **options)
    finally:
        await app.stop()


async def test_routes_resolve_exact_before_wildcard_and_filter_by_transport() -> None:
    d = await dispatcher()
    get = d.route("orders.get").message
    assert get is not None and get.name == "Orders.get"
    other = d.route("orders.zzz").message
    assert other is not None and other.name == "Orders.any_order"
    assert not d.route("ws.only")  # served on "ws" only
    assert [h.name for h in d.route("orders.created").events] == [
        "Orders.first",
        "Orders.second",
        "Orders.third",
    ]


async def test_allows_narrows_the_handlers() -> None:
    d = await dispatcher(allows=lambda h: h.name != "Orders.get")
    found = d.route("orders.get").message
    assert found is not None and found.name == "Orders.any_order"


async def test_long_names_are_looked_up_but_not_cached() -> None:
    d = await dispatcher()
    for i in range(50):
        assert not d.route("x" * MAX_CACHED_NAME + str(i))
    assert d.route("nothing") is d.route("nothing")  # short names are cached
    assert len(d._routes) == 1


async def test_request_outcomes() -> None:
    d = await dispatcher()
    reply = await d.request(Inbound("orders.get", b'{"id": 4}'))
    assert isinstance(reply, Reply) and reply.data == b'{"id":4}' and reply.event is None
    wild = await d.request(Inbound("orders.zzz", b"{}"))
    assert isinstance(wild, Reply) and wild.data == b'"orders.zzz"'
    renamed = await d.request(Inbound("orders.renamed", b"[1]"))
    assert isinstance(renamed, Reply) and (renamed.event, renamed.data) == ("orders.other", b"[1]")
    invalid = await d.request(Inbound("orders.get", b'{"id": "x"}'))
    assert isinstance(invalid, Failure) and invalid.payload["message"] == "Validation failed"
    refused = await d.request(Inbound("orders.refuse", b"{}"))
    assert isinstance(refused, Failure)
    assert refused.payload == {"status": "error", "message": "closed"}
    assert await d.request(Inbound("ws.only", b"{}")) is NOT_FOUND
    stream = await d.request(Inbound("orders.watch", b"2"))
    assert isinstance(stream, Stream) and stream.handler.name == "Orders.watch"
    assert [i async for i in stream.source] == [0, 1]


async def test_event_runs_every_handler_with_one_context_and_reports_failures() -> None:
    d = await dispatcher()
    seen.clear()
    outcome = await d.event(Inbound("orders.created", b'{"id": 1}', {"h": "v"}))
    assert isinstance(outcome, Handled) and outcome.count == 3
    assert [name for name, _ in seen] == ["first", "second", "third"]
    first_ctx, second_ctx = seen[0][1], seen[1][1]
    assert first_ctx is second_ctx and first_ctx.headers == {"h": "v"}
    assert [h.name for h, _ in outcome.failures] == ["Orders.second"]
    assert outcome.error == {"status": "error", "message": "Internal server error"}
    assert await d.event(Inbound("nobody.listens", b"{}")) is NOT_FOUND


async def test_an_event_without_event_handlers_runs_the_request_handler() -> None:
    d = await dispatcher()
    outcome = await d.event(Inbound("orders.get", b'{"id": 1}'))
    assert isinstance(outcome, Handled) and outcome.count == 1 and not outcome.failures


async def test_dispatch_prefers_the_request_handler() -> None:
    d = await dispatcher()
    assert isinstance(await d.dispatch(Inbound("orders.get", b'{"id": 1}')), Reply)
    assert isinstance(await d.dispatch(Inbound("orders.created", b'{"id": 1}')), Handled)

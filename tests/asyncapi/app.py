"""A test app for AsyncAPI: streams, wildcards, transport-limited handlers, a gateway on
its own path, raw bytes, a handler without payload, and a reply with no JSON Schema.

Nothing here connects: the document is built with ``Application.describe()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field

from framework import (
    MessageContext,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
    subscribe_message,
    websocket_gateway,
)
from framework.transports.kafka import KafkaTransport
from framework.transports.sse import SseTransport
from framework.transports.websocket import WebSocketTransport, WsContext, WsResponse


class Address(BaseModel):
    city: str
    zip_code: str = Field(pattern=r"^\d{5}$")


class NewOrder(BaseModel):
    """What a customer orders."""

    customer: str = Field(min_length=1)
    items: list[str]
    ship_to: Address


class Order(NewOrder):
    id: int
    status: str = "new"


class Tick(BaseModel):
    n: int


class Opaque:
    """A reply type pydantic has no schema for."""


@controller()
class OrdersController:
    @message_pattern("orders.create")
    async def create(self, new: NewOrder) -> Order:
        """Create an order.

        Returns the stored order with its id.
        """
        return Order(id=1, **new.model_dump())

    @message_pattern("orders.watch")
    async def watch(self, order_id: int) -> AsyncIterator[Order]:
        """Every state of one order, as it changes."""
        address = Address(city="x", zip_code="12345")
        yield Order(id=order_id, customer="a", items=[], ship_to=address)

    @message_pattern("clock.ticks")
    async def ticks(self, count: int, ctx: MessageContext):  # type: ignore[no-untyped-def]
        for n in range(count):
            yield Tick(n=n)

    @event_pattern("orders.*")
    async def audit(self, event: dict[str, Any]) -> None:
        """Every orders event, for the audit log."""

    @event_pattern("stock.#", transports=["kafka"])
    async def stock(self, raw: bytes) -> None: ...

    @message_pattern("admin.ping", transports=["memory", "sse"])
    async def ping(self) -> str:
        return "pong"

    @message_pattern("nowhere.call", transports=["mqtt"])
    async def never(self, x: int) -> int:
        return x

    @message_pattern("opaque.get", transports=["memory"])
    async def opaque(self, key: str) -> Opaque:
        return Opaque()

    @event_pattern("orders.created", transports=["kafka"])
    async def on_created_kafka(self, order: Order) -> None: ...

    @event_pattern("orders.created", transports=["ws"])
    async def on_created_ws(self, order_id: int) -> None: ...


@websocket_gateway(path="/chat")
class ChatGateway:
    @subscribe_message("chat.say")
    async def say(self, text: str, ctx: WsContext) -> WsResponse:
        return WsResponse("chat.said", text)


@module(controllers=[OrdersController, ChatGateway])
class ShopModule:
    pass


app = create_app(
    ShopModule,
    transports=[
        KafkaTransport(bootstrap_servers=["127.0.0.1:9092", "127.0.0.1:9093"], group_id="shop"),
        WebSocketTransport(path="/ws"),
        SseTransport(path="/events"),
    ],
)

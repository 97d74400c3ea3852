from __future__ import annotations

from example_app.orders.models import CreateOrder, Order
from example_app.orders.service import OrdersService
from framework import controller, get, message_pattern, post


@controller("/orders")
class OrdersController:
    def __init__(self, service: OrdersService) -> None:
        self.service = service

    @post()
    async def create(self, body: CreateOrder) -> Order:
        return await self.service.create(body)

    @get()
    async def list(self) -> list[Order]:
        return self.service.list()

    @get("/{order_id}")
    async def get_one(self, order_id: int) -> Order:
        return self.service.get(order_id)

    @message_pattern("orders.get")
    async def get_by_message(self, order_id: int) -> Order:
        return self.service.get(order_id)

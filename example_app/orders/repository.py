from __future__ import annotations

from example_app.orders.models import Order
from framework import injectable


@injectable()
class OrdersRepository:
    """An in-memory store; swap it for a database-backed provider in a real service."""

    def __init__(self) -> None:
        self._orders: dict[int, Order] = {}
        self._next_id = 1

    def add(self, customer: str, total: float) -> Order:
        order = Order(id=self._next_id, customer=customer, total=total)
        self._orders[order.id] = order
        self._next_id += 1
        return order

    def get(self, order_id: int) -> Order | None:
        return self._orders.get(order_id)

    def all(self) -> list[Order]:
        return list(self._orders.values())

from __future__ import annotations

from example_app.orders.models import CreateOrder, Order, OrderCreated
from example_app.orders.repository import OrdersRepository
from framework import Application, ClientProxy, NotFoundException, injectable


@injectable()
class OrdersService:
    def __init__(self, repo: OrdersRepository, events: ClientProxy, app: Application) -> None:
        self.repo = repo
        self.events = events
        self.app = app

    async def create(self, command: CreateOrder) -> Order:
        order = self.repo.add(command.customer, command.total)
        event = OrderCreated(**order.model_dump())
        # The event goes to whoever handles it (in-process, or Kafka when configured);
        # the publish goes to every browser watching over WebSocket or SSE.
        await self.events.emit("orders.created", event, key=str(order.id))
        await self.app.publish("orders.created", event)
        return order

    def get(self, order_id: int) -> Order:
        order = self.repo.get(order_id)
        if order is None:
            raise NotFoundException(f"Order {order_id} not found")
        return order

    def list(self) -> list[Order]:
        return self.repo.all()

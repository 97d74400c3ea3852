from __future__ import annotations

from example_app.notifications.feed import NotificationFeed
from example_app.orders.models import OrderCreated
from framework import MessageContext, controller, event_pattern, get


@controller("/notifications")
class NotificationsController:
    def __init__(self, feed: NotificationFeed) -> None:
        self.feed = feed

    @event_pattern("orders.created")
    async def on_order_created(self, event: OrderCreated, ctx: MessageContext) -> None:
        self.feed.add(event)

    @get()
    async def list(self) -> list[str]:
        return list(self.feed.items)

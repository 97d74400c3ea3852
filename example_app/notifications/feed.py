from __future__ import annotations

from collections import deque

from example_app.orders.models import OrderCreated
from example_app.settings import Settings
from framework import injectable


@injectable()
class NotificationFeed:
    """The latest notifications, bounded like every buffer in the app."""

    def __init__(self, settings: Settings) -> None:
        self.items: deque[str] = deque(maxlen=settings.feed_size)

    def add(self, event: OrderCreated) -> None:
        self.items.appendleft(f"New order #{event.id} from {event.customer}: {event.total:.2f}")

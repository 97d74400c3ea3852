from __future__ import annotations

from example_app.notifications.module import NotificationsModule
from example_app.orders.module import OrdersModule
from framework import module


@module(imports=[OrdersModule, NotificationsModule])
class AppModule:
    pass

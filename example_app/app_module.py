from __future__ import annotations

from framework import module

from example_app.notifications.module import NotificationsModule
from example_app.orders.module import OrdersModule


@module(imports=[OrdersModule, NotificationsModule])
class AppModule:
    pass

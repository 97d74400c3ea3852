from __future__ import annotations

from example_app.notifications.module import NotificationsModule
from example_app.orders.module import OrdersModule
from example_app.web.controller import WebController
from framework import module


@module(imports=[OrdersModule, NotificationsModule], controllers=[WebController])
class AppModule:
    pass

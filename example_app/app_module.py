from __future__ import annotations

from example_app.notifications.module import NotificationsModule
from example_app.orders.module import OrdersModule
from example_app.settings import Settings
from example_app.web.controller import WebController
from framework import module
from framework.config import ConfigModule


@module(
    imports=[ConfigModule.for_root(Settings), OrdersModule, NotificationsModule],
    controllers=[WebController],
)
class AppModule:
    pass

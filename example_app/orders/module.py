from __future__ import annotations

from framework import module

from example_app.orders.controller import OrdersController
from example_app.orders.repository import OrdersRepository
from example_app.orders.service import OrdersService


@module(controllers=[OrdersController], providers=[OrdersService, OrdersRepository])
class OrdersModule:
    pass

from __future__ import annotations

from example_app.orders.controller import OrdersController
from example_app.orders.repository import OrdersRepository
from example_app.orders.service import OrdersService
from framework import module


@module(controllers=[OrdersController], providers=[OrdersService, OrdersRepository])
class OrdersModule:
    pass

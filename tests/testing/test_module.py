"""The testing module: overrides, the real pipeline on memory, the HTTP client, the fixture."""

from __future__ import annotations

from typing import Any

from example_app.app_module import AppModule
from example_app.orders.models import Order
from example_app.orders.repository import OrdersRepository
from framework.testing import create_testing_module


class FakeRepo(OrdersRepository):
    def __init__(self) -> None:
        super().__init__()
        self.add("fixture customer", 1.0)


async def test_override_provider_reaches_handlers_and_http() -> None:
    builder = create_testing_module(AppModule).override_provider(
        OrdersRepository, use_value=FakeRepo()
    )
    async with builder.compile() as t:
        assert await t.client.send("orders.get", 1) == {
            "id": 1,
            "customer": "fixture customer",
            "total": 1.0,
        }
        response = await t.http.get("/orders")
        assert response.json() == [{"id": 1, "customer": "fixture customer", "total": 1.0}]
        assert isinstance(t.get(OrdersRepository), FakeRepo)


async def test_pytest_fixture_starts_and_stops_apps(framework_app: Any) -> None:
    t = await framework_app(AppModule, overrides={OrdersRepository: FakeRepo()})
    order = Order.model_validate(await t.client.send("orders.get", 1))
    assert order.customer == "fixture customer"

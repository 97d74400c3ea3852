"""The example app end to end on the in-memory transport."""

from __future__ import annotations

import asyncio

from example_app.app_module import AppModule
from framework import RemoteError
from framework.testing import create_testing_module
from tests.timing import TIME_FACTOR


async def test_create_list_get_and_event_reaches_notifications() -> None:
    async with create_testing_module(AppModule).compile() as t:
        created = await t.http.post("/orders", json={"customer": "ann", "total": 12.5})
        assert created.status_code == 201
        assert created.json() == {"id": 1, "customer": "ann", "total": 12.5}
        assert (await t.http.get("/orders")).json() == [created.json()]
        assert await t.client.send("orders.get", 1) == created.json()
        await asyncio.wait_for(t.settle(), 5 * TIME_FACTOR)
        notes = (await t.http.get("/notifications")).json()
        assert notes == ["New order #1 from ann: 12.50"]


async def test_bad_input_is_rejected_and_nothing_is_stored() -> None:
    async with create_testing_module(AppModule).compile() as t:
        bad = await t.http.post("/orders", json={"customer": "", "total": -1})
        assert bad.status_code == 422
        assert {e["loc"][0] for e in bad.json()["errors"]} == {"customer", "total"}
        assert (await t.http.get("/orders")).json() == []
        assert (await t.http.get("/orders/5")).status_code == 404
        try:
            await t.client.send("orders.get", 5)
        except RemoteError as exc:
            assert exc.payload["message"] == "Order 5 not found"
            assert exc.payload["statusCode"] == 404
        else:
            raise AssertionError("expected an error reply")

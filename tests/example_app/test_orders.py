"""The example app end to end on the in-memory transport."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from example_app.app_module import AppModule
from framework import RemoteError
from framework.testing import create_testing_module
from tests.cli.helpers import COMMAND_TIMEOUT_S, REPO_ROOT, env
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


async def test_feed_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEED_SIZE", "2")
    async with create_testing_module(AppModule).compile() as t:
        for customer in ("ann", "bob", "cy"):
            await t.http.post("/orders", json={"customer": customer, "total": 1})
        await asyncio.wait_for(t.settle(), 5 * TIME_FACTOR)
        notes = (await t.http.get("/notifications")).json()
        assert notes == ["New order #3 from cy: 1.00", "New order #2 from bob: 1.00"]


def test_python_m_example_app_names_a_bad_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "example_app"],
        cwd=REPO_ROOT,
        env=env({"PORT": "80000", "FEED_SIZE": "0"}),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: Settings cannot be loaded from the environment:",
        "  PORT: Input should be less than or equal to 65535, got '80000'",
        "  FEED_SIZE: Input should be greater than or equal to 1, got '0'",
    ]

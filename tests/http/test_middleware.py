"""``app.use_middleware`` and ``app.enable_cors`` through a real server and a real client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from framework import ConfigurationError, controller, get, module, sse
from framework.testing import create_testing_module
from framework.transports.sse import SseTransport

ORIGIN = "https://shop.example"


@controller("/items")
class ItemsController:
    @get("/{item_id}")
    async def read(self, item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise ValueError("no item 0")
        return {"id": item_id}

    @sse("/feed")
    async def feed(self) -> AsyncIterator[dict[str, int]]:
        yield {"n": 1}


@module(controllers=[ItemsController])
class ItemsModule:
    pass


class Stamp:
    """A pure ASGI middleware: records its name and adds a response header."""

    def __init__(self, app: ASGIApp, name: str, seen: list[str]) -> None:
        self.app, self.name, self.seen = app, name, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.seen.append(self.name)

        async def stamped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-stamp", self.name.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, stamped)


async def test_middlewares_wrap_routes_last_added_outermost() -> None:
    seen: list[str] = []
    t = create_testing_module(ItemsModule).compile()
    t.app.use_middleware(Stamp, name="inner", seen=seen)
    t.app.use_middleware(Stamp, name="outer", seen=seen)
    async with t:
        url = await t.listen()
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/items/3")
        assert response.json() == {"id": 3}
        assert seen == ["outer", "inner"]
        # The inner one's header is added first, then the outer one's.
        assert response.headers.get_list("x-stamp") == ["inner", "outer"]
        with pytest.raises(ConfigurationError, match="before the app serves"):
            t.app.use_middleware(Stamp, name="late", seen=seen)


async def test_cors_preflight_simple_and_error_responses() -> None:
    t = create_testing_module(ItemsModule).with_transports(SseTransport(path="/events")).compile()
    t.app.enable_cors([ORIGIN], allow_credentials=True, expose_headers=["x-total"])
    async with t:
        url = await t.listen()
        async with httpx.AsyncClient(base_url=url) as http:
            preflight = await http.options(
                "/items/3",
                headers={
                    "origin": ORIGIN,
                    "access-control-request-method": "PUT",
                    "access-control-request-headers": "x-api-key",
                },
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == ORIGIN
            assert "PUT" in preflight.headers["access-control-allow-methods"]
            assert preflight.headers["access-control-allow-headers"].lower() == "x-api-key"
            assert preflight.headers["access-control-allow-credentials"] == "true"
            assert preflight.headers["access-control-max-age"] == "600"

            simple = await http.get("/items/3", headers={"origin": ORIGIN})
            assert simple.headers["access-control-allow-origin"] == ORIGIN
            assert simple.headers["access-control-expose-headers"] == "x-total"
            failed = await http.get("/items/0", headers={"origin": ORIGIN})
            assert failed.status_code == 500
            assert failed.headers["access-control-allow-origin"] == ORIGIN

            other = await http.options(
                "/items/3",
                headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
            )
            assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        async with t.sse("/items/feed", headers={"origin": ORIGIN}) as events:
            assert events.response.headers["access-control-allow-origin"] == ORIGIN
            assert (await events.next()).json() == {"n": 1}


def test_cors_refuses_any_origin_with_credentials() -> None:
    app = create_testing_module(ItemsModule).compile().app
    with pytest.raises(ConfigurationError, match="list the origins"):
        app.enable_cors(allow_credentials=True)

"""``app.use_global_*``: one guard, interceptor and filter for HTTP routes and messages alike."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from framework import (
    ConfigurationError,
    ExecutionContext,
    RemoteError,
    controller,
    create_app,
    get,
    message_pattern,
    module,
    use_filters,
)


class ApiKeyGuard:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def can_activate(self, ctx: ExecutionContext) -> bool:
        self.seen.append((ctx.kind, ctx.transport))
        return ctx.headers.get("x-api-key") == "k"


class Envelope:
    async def intercept(self, ctx: ExecutionContext, call_next: Any) -> Any:
        return {"data": await call_next(), "via": ctx.get_type()}


class Everything:
    def catch(self, exc: Exception, ctx: ExecutionContext) -> dict[str, str]:
        return {"caught_by": "global", "error": type(exc).__name__}


class LookupOnly:
    exception_types = (LookupError,)

    def catch(self, exc: Exception, ctx: ExecutionContext) -> dict[str, str]:
        return {"caught_by": "handler"}


@controller("/items")
class ItemsController:
    @get("/{item_id}")
    async def read(self, item_id: int) -> int:
        return item_id

    @message_pattern("items.get")
    async def get_item(self, item_id: int) -> int:
        return item_id

    @message_pattern("items.fail")
    @use_filters(LookupOnly())
    async def fail(self, kind: str) -> None:
        raise KeyError(kind) if kind == "lookup" else ValueError(kind)


@module(controllers=[ItemsController])
class App:
    pass


async def test_global_enhancers_apply_to_http_and_messages() -> None:
    guard = ApiKeyGuard()
    app = create_app(App)
    app.use_global_guards(guard)
    app.use_global_interceptors(Envelope())
    app.use_global_filters(Everything())
    async with app:
        key = {"x-api-key": "k"}
        assert await app.client.send("items.get", 3, headers=key) == {"data": 3, "via": "rpc"}
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ok = await http.get("/items/4", headers=key)
            assert ok.json() == {"data": 4, "via": "http"}
            refused = await http.get("/items/4")
            # The global filter catches the guard's refusal too, as in NestJS.
            assert refused.json() == {"caught_by": "global", "error": "ForbiddenException"}
        assert ("http", "http") in guard.seen and ("message", "memory") in guard.seen
        # The handler's own filter is tried first; what it does not catch reaches the global one.
        assert await app.client.send("items.fail", "lookup", headers=key) == {
            "caught_by": "handler"
        }
        assert await app.client.send("items.fail", "value", headers=key) == {
            "caught_by": "global",
            "error": "ValueError",
        }
        with pytest.raises(ConfigurationError, match="before the app starts"):
            app.use_global_guards(guard)


async def test_without_a_global_filter_a_refusal_is_an_error_reply() -> None:
    app = create_app(App)
    app.use_global_guards(ApiKeyGuard())
    async with app:
        with pytest.raises(RemoteError) as info:
            await app.client.send("items.get", 1)
        assert info.value.payload["message"] == "Forbidden resource"

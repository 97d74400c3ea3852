"""Dispatch through the compiled router on the memory transport: precedence, pipeline."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from framework import (
    ConfigurationError,
    ExecutionContext,
    MessageContext,
    RemoteError,
    RequestTimeoutError,
    RpcException,
    controller,
    create_app,
    event_pattern,
    injectable,
    message_pattern,
    module,
    use_filters,
    use_guards,
    use_interceptors,
    use_pipes,
)
from framework.messaging.dispatch import Dispatcher
from tests.timing import TIME_FACTOR


class Item(BaseModel):
    name: str


@injectable()
class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.done = asyncio.Event()


class TokenGuard:
    def __init__(self, log: Log) -> None:
        self.log = log

    async def can_activate(self, ctx: ExecutionContext) -> bool:
        self.log.lines.append(f"guard:{ctx.kind}:{ctx.pattern}:{ctx.transport}")
        return ctx.headers.get("token") == "s3cret"


class Around:
    def __init__(self, log: Log) -> None:
        self.log = log

    async def intercept(self, ctx: ExecutionContext, call_next: Any) -> Any:
        self.log.lines.append("before")
        result = await call_next()
        self.log.lines.append("after")
        return {"wrapped": result}


class Upper:
    def transform(self, value: Item, ctx: ExecutionContext) -> Item:
        return Item(name=value.name.upper())


class ValueErrorFilter:
    exception_types = (ValueError,)

    def catch(self, exc: Exception, ctx: ExecutionContext) -> dict[str, str]:
        return {"filtered": str(exc), "handler": ctx.handler.__name__}


@controller()
@use_guards(TokenGuard)
class GuardedController:
    def __init__(self, log: Log) -> None:
        self.log = log

    @message_pattern("guarded.hello")
    @use_interceptors(Around)
    @use_pipes(Upper())
    async def hello(self, item: Item) -> str:
        self.log.lines.append("handler")
        return f"hello {item.name}"

    @message_pattern("guarded.fail")
    @use_filters(ValueErrorFilter())
    async def fail(self, kind: str) -> None:
        if kind == "value":
            raise ValueError("bad value")
        raise RpcException({"status": "error", "message": "custom", "code": 7})


@controller()
class PlainController:
    def __init__(self, log: Log) -> None:
        self.log = log

    @message_pattern("orders.*")
    async def any_order(self, payload: Any, ctx: MessageContext) -> str:
        return f"wildcard:{ctx.pattern}"

    @message_pattern("orders.special")
    async def special(self, payload: Any) -> str:
        return "exact"

    @event_pattern("audit.#")
    async def audit_all(self, payload: Any, ctx: MessageContext) -> None:
        self.log.lines.append(f"audit.#:{ctx.pattern}")

    @event_pattern("audit.login")
    async def audit_login(self, payload: Any) -> None:
        self.log.lines.append("audit.login")
        self.log.done.set()

    @message_pattern("slow")
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "late"

    @message_pattern("only.kafka", transports=["kafka"])
    async def kafka_only(self, payload: Any) -> str:
        return "kafka"


@module(controllers=[GuardedController, PlainController], providers=[Log])
class App:
    pass


async def test_guard_interceptor_pipe_run_in_order() -> None:
    async with create_app(App) as app:
        reply = await app.client.send("guarded.hello", {"name": "ann"}, headers={"token": "s3cret"})
        assert reply == {"wrapped": "hello ANN"}
        assert app.get(Log).lines == [
            "guard:message:guarded.hello:memory",
            "before",
            "handler",
            "after",
        ]


async def test_guard_refusal_is_forbidden_and_handler_never_runs() -> None:
    async with create_app(App) as app:
        with pytest.raises(RemoteError) as info:
            await app.client.send("guarded.hello", {"name": "ann"})
        assert info.value.payload["message"] == "Forbidden resource"
        assert "handler" not in app.get(Log).lines


async def test_filter_turns_its_exception_into_the_reply_and_ignores_others() -> None:
    async with create_app(App) as app:
        headers = {"token": "s3cret"}
        assert await app.client.send("guarded.fail", "value", headers=headers) == {
            "filtered": "bad value",
            "handler": "fail",
        }
        with pytest.raises(RemoteError) as info:
            await app.client.send("guarded.fail", "rpc", headers=headers)
        assert info.value.payload == {"status": "error", "message": "custom", "code": 7}


async def test_exact_pattern_beats_wildcard() -> None:
    async with create_app(App) as app:
        assert await app.client.send("orders.special", 1) == "exact"
        assert await app.client.send("orders.created", 1) == "wildcard:orders.created"


async def test_events_reach_wildcard_and_exact_handlers_exact_first() -> None:
    async with create_app(App) as app:
        await app.client.emit("audit.login", {})
        await asyncio.wait_for(app.get(Log).done.wait(), 5 * TIME_FACTOR)
        assert app.get(Log).lines == ["audit.login", "audit.#:audit.login"]


async def test_send_timeout_raises_a_clear_error() -> None:
    async with create_app(App) as app:
        with pytest.raises(RequestTimeoutError, match=r"No reply to 'slow' within 0\.05 s"):
            await app.client.send("slow", 5, timeout=0.05)
        assert await app.client.send("slow", 0) == "late"


async def test_handler_limited_to_a_transport_is_unknown_elsewhere() -> None:
    async with create_app(App) as app:
        with pytest.raises(RemoteError, match="no matching message handler"):
            await app.client.send("only.kafka", {})


async def test_malformed_json_is_named_as_such() -> None:
    async with create_app(App) as app:
        with pytest.raises(RemoteError) as info:
            await app.client.send("guarded.hello", b"{not json", headers={"token": "s3cret"})
        assert info.value.payload["message"] == "Malformed JSON payload"


async def test_two_reply_handlers_for_one_pattern_fail_at_startup() -> None:
    @controller()
    class Twice:
        @message_pattern("dup")
        async def one(self, x: int) -> int:
            return x

        @message_pattern("dup")
        async def two(self, x: int) -> int:
            return x

    @module(controllers=[Twice])
    class Dup:
        pass

    with pytest.raises(ConfigurationError, match="Two request/reply handlers for pattern 'dup'"):
        await create_app(Dup).start()


class HeaderGuard:
    """A sync guard: with one interceptor and no filters the router runs the pipeline
    without a coroutine of its own; refusals and interceptors must still work there."""

    def can_activate(self, ctx: ExecutionContext) -> bool:
        return ctx.headers.get("role") == "admin"


class Tag:
    async def intercept(self, ctx: ExecutionContext, call_next: Any) -> Any:
        return {"tagged": await call_next()}


@controller()
class SimplePipelineController:
    @message_pattern("simple.echo")
    @use_guards(HeaderGuard())
    @use_interceptors(Tag())
    async def echo(self, item: Item) -> str:
        return item.name

    @event_pattern("simple.event")
    @use_guards(HeaderGuard())
    async def event(self, item: Item, ctx: MessageContext) -> None:
        raise AssertionError("a refused event never reaches its handler")


async def test_sync_guard_and_one_interceptor_refuse_and_wrap() -> None:
    @module(controllers=[SimplePipelineController])
    class Simple:
        pass

    async with create_app(Simple) as app:
        admin = {"role": "admin"}
        assert await app.client.send("simple.echo", {"name": "x"}, headers=admin) == {"tagged": "x"}
        with pytest.raises(RemoteError) as info:
            await app.client.send("simple.echo", {"name": "x"})
        assert info.value.payload["message"] == "Forbidden resource"
        with pytest.raises(RemoteError) as invalid:
            await app.client.send("simple.echo", {"nom": "x"}, headers=admin)
        assert invalid.value.payload["message"] == "Validation failed"
        await app.client.emit("simple.event", {"name": "x"})
        await app.memory.join()  # refused: logged, and the worker keeps serving
        assert await app.client.send("simple.echo", {"name": "y"}, headers=admin) == {"tagged": "y"}


@controller()
class Plain:
    @message_pattern("plain.echo")
    async def echo(self, item: Item) -> str:
        return item.name

    @message_pattern("plain.skip")
    async def skip(self, item: Item) -> str:
        return item.name


class Trail:
    """A handler middleware that records the order it runs in; wraps nothing it skips."""

    def __init__(self, name: str, needs_context: bool, trail: list[str]) -> None:
        self.name = name
        self.needs_context = needs_context
        self.trail = trail

    def wrap(self, handler: Any, call: Any) -> Any:
        if handler.pattern == "plain.skip":
            return call

        async def invoke(raw: Any, ctx: Any) -> Any:
            kind = "context" if isinstance(ctx, MessageContext) else type(ctx).__name__
            self.trail.append(f"{self.name}:{kind}")
            return await call(raw, ctx)

        return invoke


@module(controllers=[Plain])
class PlainModule:
    pass


async def test_handler_middlewares_are_compiled_once_first_outermost() -> None:
    trail: list[str] = []
    app = create_app(PlainModule)
    app.use_handler_middleware(Trail("outer", False, trail), Trail("inner", True, trail))
    async with app:
        echo, skip = (_request_handler(app, p) for p in ("plain.echo", "plain.skip"))
        assert echo is not None and skip is not None
        compiled = echo.call
        assert await app.client.send("plain.echo", {"name": "x"}) == "x"
        assert trail == ["outer:context", "inner:context"]
        assert echo.call is compiled  # final once built: nothing rewrites it later
        # A handler no middleware wrapped stays as the router compiled it.
        assert (echo.needs_context, skip.needs_context) == (True, False)
        with pytest.raises(ConfigurationError, match="before the app starts"):
            app.use_handler_middleware(Trail("late", False, trail))


async def test_without_middlewares_nothing_wraps_a_handler() -> None:
    async with create_app(PlainModule) as app:
        handler = _request_handler(app, "plain.echo")
        assert handler is not None and not handler.needs_context
        assert handler.call.__module__ == "framework.messaging.router"


def _request_handler(app: Any, pattern: str) -> Any:
    return Dispatcher(app.router, "memory").route(pattern).message

"""``override_guard/interceptor/filter/pipe``: the testing module replaces an enhancer
wherever the app applies it (handler, controller, global), on messages and HTTP alike."""

from __future__ import annotations

from typing import Any

import pytest

from framework import (
    ConfigurationError,
    ExecutionContext,
    RemoteError,
    controller,
    get,
    injectable,
    message_pattern,
    module,
    use_filters,
    use_guards,
    use_interceptors,
    use_pipes,
)
from framework.testing import create_testing_module


@injectable()
class TokenService:
    def valid(self, token: str | None) -> bool:
        return token == "secret"


class AuthGuard:
    def __init__(self, tokens: TokenService) -> None:
        self.tokens = tokens

    def can_activate(self, ctx: ExecutionContext) -> bool:
        return self.tokens.valid(ctx.headers.get("authorization"))


class AllowAll:
    def can_activate(self, ctx: ExecutionContext) -> bool:
        return True


class Timing:
    async def intercept(self, ctx: ExecutionContext, call_next: Any) -> Any:
        return {"result": await call_next(), "timed": True}


class Upper:
    def transform(self, value: Any, ctx: ExecutionContext) -> Any:
        return value.upper() if isinstance(value, str) else value


class HideErrors:
    def catch(self, exc: Exception, ctx: ExecutionContext) -> dict[str, str]:
        return {"error": "hidden"}


SHARED_PIPE = Upper()
TIMING = Timing()


@controller("/notes")
@use_guards(AuthGuard)
class NotesController:
    @message_pattern("notes.echo")
    @use_interceptors(TIMING)
    @use_pipes(SHARED_PIPE)
    async def echo(self, text: str) -> str:
        return text

    @get("/{text}")
    async def http_echo(self, text: str) -> str:
        return text

    @message_pattern("notes.fail")
    @use_filters(HideErrors)
    async def fail(self) -> None:
        raise RuntimeError("boom")


@module(controllers=[NotesController], providers=[TokenService])
class NotesModule:
    pass


async def test_without_overrides_the_real_enhancers_run() -> None:
    async with create_testing_module(NotesModule).compile() as t:
        with pytest.raises(RemoteError, match="Forbidden"):
            await t.client.send("notes.echo", "hi")
        assert (await t.http.get("/notes/hi")).status_code == 403
        auth = {"authorization": "secret"}
        assert await t.client.send("notes.echo", "hi", headers=auth) == {
            "result": "HI",
            "timed": True,
        }
        assert await t.client.send("notes.fail", None, headers=auth) == {"error": "hidden"}


async def test_override_guard_with_a_value_on_messages_and_http() -> None:
    builder = create_testing_module(NotesModule).override_guard(AuthGuard, use_value=AllowAll())
    async with builder.compile() as t:
        assert await t.client.send("notes.echo", "hi") == {"result": "HI", "timed": True}
        response = await t.http.get("/notes/hi")
        assert response.status_code == 200 and response.json() == "hi"


async def test_override_guard_with_a_class_built_from_the_modules_providers() -> None:
    class StagingGuard:
        def __init__(self, tokens: TokenService) -> None:
            self.tokens = tokens

        def can_activate(self, ctx: ExecutionContext) -> bool:
            return ctx.headers.get("authorization") == "staging"

    builder = create_testing_module(NotesModule).override_guard(AuthGuard, use_class=StagingGuard)
    async with builder.compile() as t:
        assert (await t.http.get("/notes/x", headers={"authorization": "staging"})).json() == "x"
        assert (
            await t.http.get("/notes/x", headers={"authorization": "secret"})
        ).status_code == 403


async def test_override_interceptor_pipe_and_filter() -> None:
    class Passthrough:
        async def intercept(self, ctx: ExecutionContext, call_next: Any) -> Any:
            return await call_next()

    class Reverse:
        def transform(self, value: Any, ctx: ExecutionContext) -> Any:
            return value[::-1]

    class ShowErrors:
        def catch(self, exc: Exception, ctx: ExecutionContext) -> dict[str, str]:
            return {"error": str(exc)}

    builder = (
        create_testing_module(NotesModule)
        .override_guard(AuthGuard, use_value=AllowAll())
        .override_interceptor(TIMING, use_value=Passthrough())
        .override_pipe(SHARED_PIPE, use_class=Reverse)
        .override_filter(HideErrors, use_value=ShowErrors())
    )
    async with builder.compile() as t:
        assert await t.client.send("notes.echo", "abc") == "cba"
        assert await t.client.send("notes.fail", None) == {"error": "boom"}


async def test_global_guards_are_overridden_too() -> None:
    @controller()
    class Open:
        @message_pattern("open.ping")
        async def ping(self) -> str:
            return "pong"

    @module(controllers=[Open], providers=[TokenService])
    class M:
        pass

    deny = AuthGuard(TokenService())
    testing = create_testing_module(M).override_guard(deny, use_value=AllowAll()).compile()
    testing.app.use_global_guards(deny)
    async with testing as t:
        assert await t.client.send("open.ping", None) == "pong"


async def test_an_override_that_replaces_nothing_fails_the_start() -> None:
    class NeverUsed:
        def can_activate(self, ctx: ExecutionContext) -> bool:
            return False

    builder = create_testing_module(NotesModule).override_guard(NeverUsed, use_value=AllowAll())
    with pytest.raises(ConfigurationError, match=r"override_guard\(NeverUsed\) replaced nothing"):
        async with builder.compile():
            pass
    with pytest.raises(ConfigurationError, match="exactly one of use_value= or use_class="):
        create_testing_module(NotesModule).override_guard(AuthGuard)

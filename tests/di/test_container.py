"""Module graph, visibility, scopes, factories and cycles, as a user declares them."""

from __future__ import annotations

from typing import Annotated

import pytest

from framework import (
    REQUEST,
    ConfigurationError,
    DependencyCycleError,
    DynamicModule,
    Inject,
    InjectionToken,
    MessageContext,
    Provider,
    Scope,
    controller,
    create_app,
    forward_ref,
    injectable,
    message_pattern,
    module,
)

CONFIG = InjectionToken("CONFIG")


@injectable()
class Database:
    def __init__(self, url: Annotated[str, Inject(CONFIG)]) -> None:
        self.url = url


@module(providers=[Database], exports=[Database])
class DbModule:
    @staticmethod
    def for_root(url: str) -> DynamicModule:
        return DynamicModule(DbModule, providers=[Provider(CONFIG, use_value=url)])


@injectable()
class Repo:
    def __init__(self, db: Database) -> None:
        self.db = db


async def test_dynamic_module_provides_config_to_exported_provider() -> None:
    @module(imports=[DbModule.for_root("sqlite://x")], providers=[Repo])
    class App:
        pass

    async with create_app(App) as app:
        assert app.get(Repo).db.url == "sqlite://x"
        assert app.get(Repo).db is app.get(Database)


async def test_unexported_provider_fails_at_startup_naming_the_fix() -> None:
    @module(providers=[Database, Provider(CONFIG, use_value="u")])
    class Hidden:
        pass

    @module(imports=[Hidden], providers=[Repo])
    class App:
        pass

    with pytest.raises(ConfigurationError) as info:
        await create_app(App).start()
    message = str(info.value)
    assert "Repo" in message and "Database" in message
    assert "export it from Hidden and import Hidden into App" in message


async def test_missing_provider_names_consumer_and_parameter() -> None:
    @module(providers=[Repo])
    class App:
        pass

    with pytest.raises(
        ConfigurationError, match=r"Repo \(in App\) needs Database for parameter 'db'"
    ):
        await create_app(App).start()


async def test_provider_cycle_prints_the_path() -> None:
    @injectable()
    class A:
        def __init__(self, b: B) -> None:
            self.b = b

    @injectable()
    class B:
        def __init__(self, a: A) -> None:
            self.a = a

    globals().update(A=A, B=B)  # so the string annotations resolve
    try:

        @module(providers=[A, B])
        class App:
            pass

        with pytest.raises(DependencyCycleError, match=r"A -> B -> A"):
            await create_app(App).start()
    finally:
        del globals()["A"], globals()["B"]


async def test_module_import_cycle_needs_forward_ref() -> None:
    @module(providers=[Database, Provider(CONFIG, use_value="cyc")], exports=[Database])
    class First:
        pass

    @module(imports=[First], providers=[Repo], exports=[Repo])
    class Second:
        pass

    First.__framework_module__.imports.append(forward_ref(lambda: Second))  # type: ignore[attr-defined]

    @module(imports=[First])
    class App:
        pass

    async with create_app(App) as app:
        assert app.get(Repo).db.url == "cyc"

    First.__framework_module__.imports[-1] = Second  # type: ignore[attr-defined]
    with pytest.raises(DependencyCycleError, match="First -> Second -> First"):
        await create_app(App).start()


async def test_global_module_exports_are_visible_everywhere() -> None:
    @module(providers=[Provider(CONFIG, use_value="g")], exports=[CONFIG], global_=True)
    class ConfigModule:
        pass

    @module(providers=[Database], exports=[Database])
    class Feature:
        pass

    @module(imports=[ConfigModule, Feature])
    class App:
        pass

    async with create_app(App) as app:
        assert app.get(Database).url == "g"


async def test_async_factory_is_awaited_and_gets_its_inject_tokens() -> None:
    async def connect(url: str) -> dict[str, str]:
        return {"connected": url}

    CONN = InjectionToken("CONN")

    @module(
        providers=[
            Provider(CONFIG, use_value="pg://db"),
            Provider(CONN, use_factory=connect, inject=[CONFIG]),
            Provider("alias", use_existing=CONN),
        ]
    )
    class App:
        pass

    async with create_app(App) as app:
        assert app.get(CONN) == {"connected": "pg://db"}
        assert app.get("alias") is app.get(CONN)


async def test_transient_gives_each_consumer_its_own_instance() -> None:
    @injectable(scope=Scope.TRANSIENT)
    class Helper:
        pass

    @injectable()
    class One:
        def __init__(self, helper: Helper) -> None:
            self.helper = helper

    @injectable()
    class Two:
        def __init__(self, helper: Helper) -> None:
            self.helper = helper

    globals().update(Helper=Helper)
    try:

        @module(providers=[Helper, One, Two])
        class App:
            pass

        async with create_app(App) as app:
            assert app.get(One).helper is not app.get(Two).helper
    finally:
        del globals()["Helper"]


@injectable(scope=Scope.REQUEST)
class RequestState:
    created = 0

    def __init__(self) -> None:
        RequestState.created += 1
        self.seen: list[int] = []


@controller()
class ScopedController:
    """Depends on a request-scoped provider, so it is request-scoped too."""

    def __init__(self, state: RequestState, again: RequestState) -> None:
        self.same = state is again
        self.state = state

    @message_pattern("scoped.id")
    async def handle(self, n: int, ctx: MessageContext) -> dict[str, object]:
        self.state.seen.append(n)
        return {"seen": self.state.seen, "same": self.same}


async def test_request_scope_is_one_instance_per_message() -> None:
    @module(controllers=[ScopedController], providers=[RequestState])
    class App:
        pass

    async with create_app(App) as app:
        RequestState.created = 0
        assert await app.client.send("scoped.id", 1) == {"seen": [1], "same": True}
        assert await app.client.send("scoped.id", 2) == {"seen": [2], "same": True}
        assert RequestState.created == 2
        with pytest.raises(ConfigurationError, match="request-scoped"):
            app.get(RequestState)


async def test_lifecycle_hooks_run_in_dependency_order_and_reverse() -> None:
    calls: list[str] = []

    class Hooks:
        name = ""

        def on_module_init(self) -> None:
            calls.append(f"init:{self.name}")

        async def on_application_bootstrap(self) -> None:
            calls.append(f"bootstrap:{self.name}")

        async def before_application_shutdown(self, signal: str | None) -> None:
            calls.append(f"before:{self.name}:{signal}")

        def on_module_destroy(self) -> None:
            calls.append(f"destroy:{self.name}")

        def on_application_shutdown(self) -> None:
            calls.append(f"shutdown:{self.name}")

    @injectable()
    class Low(Hooks):
        name = "low"

    @injectable()
    class High(Hooks):
        name = "high"

        def __init__(self, low: Low) -> None:
            self.low = low

    globals().update(Low=Low)
    try:

        @module(providers=[High, Low])
        class App:
            pass

        app = create_app(App)
        await app.start()
        await app.stop("SIGTERM")
    finally:
        del globals()["Low"]
    assert calls == [
        "init:low",
        "init:high",
        "bootstrap:low",
        "bootstrap:high",
        "before:high:SIGTERM",
        "before:low:SIGTERM",
        "destroy:high",
        "destroy:low",
        "shutdown:high",
        "shutdown:low",
    ]


def test_provider_needs_exactly_one_recipe() -> None:
    with pytest.raises(ConfigurationError, match="exactly one of"):
        Provider(CONFIG)
    with pytest.raises(ConfigurationError, match="exactly one of"):
        Provider(CONFIG, use_value=1, use_factory=lambda: 2)


async def test_importing_a_plain_class_says_to_decorate_it() -> None:
    class NotAModule:
        pass

    @module(imports=[NotAModule])
    class App:
        pass

    with pytest.raises(ConfigurationError, match="is not a module: decorate it with @module"):
        await create_app(App).start()


@injectable(scope=Scope.REQUEST)
class CallInfo:
    def __init__(self, request: Annotated[MessageContext, Inject(REQUEST)]) -> None:
        self.pattern = request.pattern


@controller()
class CallInfoController:
    def __init__(self, info: CallInfo) -> None:
        self.info = info

    @message_pattern("call.info.*")
    async def handle(self, payload: int) -> str:
        return self.info.pattern


async def test_request_token_injects_the_current_message_context() -> None:
    @module(controllers=[CallInfoController], providers=[CallInfo])
    class App:
        pass

    async with create_app(App) as app:
        assert await app.client.send("call.info.a", 1) == "call.info.a"
        assert await app.client.send("call.info.b", 1) == "call.info.b"


async def test_an_app_can_start_again_after_stopping() -> None:
    @module(controllers=[CallInfoController], providers=[CallInfo])
    class App:
        pass

    app = create_app(App)
    for _ in range(2):
        async with app:
            assert await app.client.send("call.info.x", 1) == "call.info.x"
    assert len(app.asgi.router.routes) == len(app.http_routes)

"""Module graph, visibility, scopes, factories and cycles, as a user declares them."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from pydantic import BaseModel

from framework import (
    REQUEST,
    ConfigurationError,
    DependencyCycleError,
    DynamicModule,
    Inject,
    InjectionToken,
    MessageContext,
    Provider,
    RemoteError,
    Scope,
    controller,
    create_app,
    forward_ref,
    injectable,
    message_pattern,
    module,
    post,
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

    @module(providers=[A, B])
    class App:
        pass

    with pytest.raises(DependencyCycleError, match=r"A -> B -> A"):
        await create_app(App).start()


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

    @module(providers=[Helper, One, Two])
    class App:
        pass

    async with create_app(App) as app:
        assert app.get(One).helper is not app.get(Two).helper


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

    @module(providers=[High, Low])
    class App:
        pass

    app = create_app(App)
    await app.start()
    await app.stop("SIGTERM")
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


# -- providers and handlers declared inside a function --------------------------------
# This file has `from __future__ import annotations`: every hint below is a string that
# names a class existing only in the test function's locals.


async def test_providers_declared_in_a_function_inject_each_other() -> None:
    @injectable()
    class Hidden: ...

    @injectable()
    class User:
        def __init__(self, hidden: Hidden) -> None:
            self.hidden = hidden

    @module(providers=[Hidden, User])
    class M: ...

    async with create_app(M) as app:
        assert isinstance(app.get(User).hidden, Hidden)
        assert app.get(User).hidden is app.get(Hidden)


async def test_a_local_provider_may_name_one_defined_after_it_before_its_module() -> None:
    @injectable()
    class Early:
        def __init__(self, late: Late) -> None:
            self.late = late

    class Late:  # no decorator: the @module below still knows the name
        pass

    @module(providers=[Early, Late])
    class M: ...

    async with create_app(M) as app:
        assert app.get(Early).late is app.get(Late)


async def test_a_local_controller_validates_a_local_payload_model() -> None:
    class Order(BaseModel):
        item: str
        qty: int

    class Receipt(BaseModel):
        summary: str

    @injectable()
    class Pricing:
        def total(self, order: Order) -> str:
            return f"{order.qty} x {order.item}"

    @controller()
    class Orders:
        def __init__(self, pricing: Pricing) -> None:
            self.pricing = pricing

        @message_pattern("orders.place")
        async def place(self, order: Order, ctx: MessageContext) -> Receipt:
            return Receipt(summary=f"{ctx.pattern}: {self.pricing.total(order)}")

        @post("/orders")
        async def create(self, order: Order) -> Receipt:
            return Receipt(summary=self.pricing.total(order))

    @module(controllers=[Orders], providers=[Pricing])
    class M: ...

    async with create_app(M) as app:
        reply = await app.client.send("orders.place", {"item": "tea", "qty": 2})
        assert reply == {"summary": "orders.place: 2 x tea"}
        with pytest.raises(RemoteError) as invalid:
            await app.client.send("orders.place", {"item": "tea"})
        assert invalid.value.payload["message"] == "Validation failed"
        assert [e["loc"] for e in invalid.value.payload["errors"]] == [["qty"]]
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            created = await http.post("/orders", json={"item": "cake", "qty": 1})
            assert created.status_code == 201
            assert created.json() == {"summary": "1 x cake"}


async def test_a_name_defined_after_the_module_fails_saying_what_to_do() -> None:
    @injectable()
    class User:
        def __init__(self, hidden: Hidden) -> None:
            self.hidden = hidden

    @module(providers=[User])
    class M: ...

    class Hidden:  # too late: after the @module that lists User
        pass

    with pytest.raises(ConfigurationError) as info:
        await create_app(M).start()
    message = str(info.value)
    assert "Cannot read the type hints of User: name 'Hidden' (parameter 'hidden')" in message
    assert "Define Hidden at module level or import it" in message
    assert "define it before User (or at least before the @module that lists it)" in message
    assert "from __future__ import annotations" in message
    assert Hidden  # defined, but not where User's hints are resolved


async def test_an_unknown_payload_type_names_the_handler_and_parameter() -> None:
    @controller()
    class Orders:
        @message_pattern("orders.place")
        async def place(self, order: Missing) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    @module(controllers=[Orders])
    class M: ...

    with pytest.raises(ConfigurationError) as info:
        await create_app(M).start()
    message = str(info.value)
    assert (
        "type hints of " in message
        and "Orders.place: name 'Missing' (parameter 'order')" in message
    )
    assert "define it before Orders" in message

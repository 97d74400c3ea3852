"""Code written for the ``injector`` library, in the style of injector's own docs, running
inside an app: ``injector.Module`` imports, ``@inject`` classes and ``app.injector``."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pytest
from injector import (
    Binder,
    Inject,
    Injector,
    Module,
    NoInject,
    inject,
    multiprovider,
    provider,
    singleton,
    threadlocal,
)

from framework import (
    ConfigurationError,
    InjectionToken,
    Provider,
    Scope,
    controller,
    create_app,
    injectable,
    message_pattern,
    module,
)
from framework.testing import create_testing_module

# -- the example from injector's README, nearly verbatim ---------------------------------


class Configuration:
    def __init__(self, connection_string: str) -> None:
        self.connection_string = connection_string


class RequestHandler:
    @inject
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def get(self) -> str:
        cursor = self._db.cursor()
        cursor.execute("SELECT key, value FROM data ORDER by key")
        return str(cursor.fetchall())


class DatabaseModule(Module):
    @singleton
    @provider
    def provide_sqlite_connection(self, configuration: Configuration) -> sqlite3.Connection:
        conn = sqlite3.connect(configuration.connection_string)
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE IF NOT EXISTS data (key PRIMARY KEY, value)")
        cursor.execute('INSERT OR REPLACE INTO data VALUES ("hello", "world")')
        return conn


def configure_for_testing(binder: Binder) -> None:
    configuration = Configuration(":memory:")
    binder.bind(Configuration, to=configuration, scope=singleton)


class ConfigurationModule(Module):
    def configure(self, binder: Binder) -> None:
        configure_for_testing(binder)


@module(imports=[ConfigurationModule], exports=[ConfigurationModule], global_=True)
class ConfigModule:
    pass


@controller()
class QueryController:
    def __init__(self, handler: RequestHandler) -> None:
        self.handler = handler

    @message_pattern("query")
    async def query(self) -> str:
        return self.handler.get()


@module(
    imports=[ConfigModule, DatabaseModule],
    providers=[RequestHandler],
    controllers=[QueryController],
)
class AppModule:
    pass


async def test_the_injector_readme_example_runs_as_an_app() -> None:
    async with create_app(AppModule) as app:
        assert await app.client.send("query", None) == "[('hello', 'world')]"
        # the @singleton @provider connection is one instance, the one the handler holds
        conn = app.get(sqlite3.Connection)
        assert app.get(RequestHandler)._db is conn
        assert app.injector.get(sqlite3.Connection) is conn


async def test_app_injector_returns_the_apps_singletons() -> None:
    async with create_app(AppModule) as app:
        handler = app.injector.get(RequestHandler)
        assert handler is app.get(RequestHandler)
        assert app.injector.get(QueryController).handler is handler
        assert app.injector.get(Injector) is app.injector


async def test_unlisted_inject_class_is_built_from_the_apps_graph() -> None:
    class Report:
        @inject
        def __init__(self, handler: RequestHandler, title: NoInject[str] = "daily") -> None:
            self.handler = handler
            self.title = title

    async with create_app(AppModule) as app:
        report = app.injector.get(Report)
        assert report.handler is app.get(RequestHandler)
        assert report.title == "daily"


# -- @inject-style classes as providers ---------------------------------------------------


class Clock:
    def now(self) -> int:
        return 42


@inject
@dataclass
class Stamper:
    clock: Clock


class Audit:
    def __init__(self, stamper: Inject[Stamper], label: NoInject[str] = "audit") -> None:
        self.stamper = stamper
        self.label = label


async def test_inject_dataclass_and_inject_annotations_resolve_as_providers() -> None:
    @module(providers=[Clock, Stamper, Audit])
    class M:
        pass

    async with create_app(M) as app:
        audit = app.get(Audit)
        assert audit.stamper is app.get(Stamper)
        assert audit.stamper.clock.now() == 42
        assert audit.label == "audit"


# -- scopes, bindings and visibility ------------------------------------------------------


class Greeter:
    def greet(self) -> str:
        return "hello"


class LoudGreeter(Greeter):
    def greet(self) -> str:
        return "HELLO"


@singleton
class Counter:
    pass


class Session:
    pass


NAME = InjectionToken("NAME")


class GreetingModule(Module):
    def configure(self, binder: Binder) -> None:
        binder.bind(Greeter, to=LoudGreeter, scope=singleton)
        binder.bind(Counter)  # @singleton on the class
        binder.bind(Session)  # no scope: a new one each time, as in injector

    @provider
    def provide_name(self, greeter: Greeter) -> str:
        return greeter.greet().lower()


async def test_bindings_keep_injector_scopes() -> None:
    @module(imports=[GreetingModule])
    class M:
        pass

    async with create_app(M) as app:
        assert isinstance(app.get(Greeter), LoudGreeter)
        assert app.injector.get(Greeter) is app.get(Greeter)
        assert app.injector.get(Counter) is app.injector.get(Counter)
        assert app.injector.get(Session) is not app.injector.get(Session)
        assert app.injector.get(str) == "hello"
        with pytest.raises(ConfigurationError, match="transient-scoped"):
            app.get(Session)


async def test_injector_module_bindings_need_an_import_to_be_seen() -> None:
    @injectable()
    class UsesGreeter:
        def __init__(self, greeter: Greeter) -> None:
            self.greeter = greeter

    @module(imports=[GreetingModule], exports=[GreetingModule])
    class Greetings:
        pass

    @module(providers=[UsesGreeter])
    class Lonely:
        pass

    with pytest.raises(ConfigurationError, match="Lonely cannot see it"):
        async with create_app(Lonely):
            pass

    @module(imports=[Greetings], providers=[UsesGreeter])
    class Joined:
        pass

    async with create_app(Joined) as app:
        assert app.get(UsesGreeter).greeter.greet() == "HELLO"


class Settings:
    def __init__(self, url: str) -> None:
        self.url = url


class Db:
    def __init__(self, url: str) -> None:
        self.url = url


class DbModule(Module):
    @singleton
    @provider
    def provide_db(self, settings: Settings) -> Db:
        return Db(settings.url)


async def test_injector_module_sees_global_framework_providers() -> None:
    @module(providers=[Provider(Settings, use_value=Settings("db://x"))], exports=[Settings])
    class Local:
        pass

    @module(imports=[Local, DbModule])
    class NotGlobal:
        pass

    with pytest.raises(ConfigurationError, match=r"Db \(in DbModule\) needs Settings"):
        async with create_app(NotGlobal):
            pass

    @module(
        providers=[Provider(Settings, use_value=Settings("db://x"))],
        exports=[Settings],
        global_=True,
    )
    class GlobalSettings:
        pass

    @module(imports=[GlobalSettings, DbModule])
    class M:
        pass

    async with create_app(M) as app:
        assert app.get(Db).url == "db://x"
        assert app.get(Db) is app.injector.get(Db)


async def test_testing_module_overrides_an_injector_binding() -> None:
    @module(imports=[GreetingModule])
    class M:
        pass

    class Quiet(Greeter):
        def greet(self) -> str:
            return "hi"

    testing = create_testing_module(M).override_provider(Greeter, use_value=Quiet()).compile()
    async with testing as t:
        assert t.app.injector.get(str) == "hi"


async def test_unsupported_bindings_fail_at_start_naming_them() -> None:
    class Plugins(Module):
        @multiprovider
        def provide_plugins(self) -> list[str]:
            return ["a"]

    @module(imports=[Plugins])
    class M:
        pass

    with pytest.raises(ConfigurationError, match=r"Plugins binds list.*multibind"):
        async with create_app(M):
            pass

    class PerThread(Module):
        def configure(self, binder: Binder) -> None:
            binder.bind(Session, scope=threadlocal)

    @module(imports=[PerThread])
    class N:
        pass

    with pytest.raises(ConfigurationError, match="PerThread binds Session in 'ThreadLocalScope'"):
        async with create_app(N):
            pass


async def test_request_scoped_provider_is_refused_by_app_injector() -> None:
    @injectable(scope=Scope.REQUEST)
    class PerRequest:
        pass

    @module(providers=[PerRequest])
    class M:
        pass

    async with create_app(M) as app:
        with pytest.raises(ConfigurationError, match="request-scoped"):
            app.injector.get(PerRequest)


async def test_named_tokens_are_bound_too() -> None:
    @module(providers=[Provider(NAME, use_value="orders")])
    class M:
        pass

    async with create_app(M) as app:
        assert app.injector.get(NAME) == "orders"  # type: ignore[call-overload]

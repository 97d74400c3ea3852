"""``ConfigModule.for_root``: typed settings from the real process environment and env
files, injected by type; bad variables fail the start naming each variable."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from framework import (
    ConfigurationError,
    controller,
    create_app,
    injectable,
    message_pattern,
    module,
)
from framework.config import ConfigModule, load_settings
from framework.testing import create_testing_module
from tests.cli.helpers import cli


class Database(BaseModel):
    host: str = "localhost"
    port: int = 5432


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_", env_nested_delimiter="__")

    database_url: str
    page_size: int = 50
    api_key: SecretStr = SecretStr("")
    region: str = Field("eu", validation_alias="DEPLOY_REGION")
    db: Database = Database()


@injectable()
class OrdersService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


@controller()
class OrdersController:
    def __init__(self, service: OrdersService) -> None:
        self.service = service

    @message_pattern("orders.page_size")
    async def page_size(self) -> int:
        return self.service.settings.page_size


@module(providers=[OrdersService], controllers=[OrdersController], exports=[OrdersService])
class OrdersModule:
    pass


@module(imports=[ConfigModule.for_root(Settings), OrdersModule])
class AppModule:
    pass


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDERS_DATABASE_URL", "ORDERS_PAGE_SIZE", "DEPLOY_REGION", "ORDERS_DB__PORT"):
        monkeypatch.delenv(name, raising=False)


async def test_settings_are_injected_by_type_into_any_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERS_DATABASE_URL", "postgres://db/orders")
    monkeypatch.setenv("ORDERS_PAGE_SIZE", "20")
    monkeypatch.setenv("ORDERS_DB__PORT", "6543")
    monkeypatch.setenv("DEPLOY_REGION", "us")
    async with create_app(AppModule) as app:
        settings = app.get(Settings)
        assert app.get(OrdersService).settings is settings
        assert settings.database_url == "postgres://db/orders"
        assert settings.db.port == 6543 and settings.region == "us"
        assert await app.client.send("orders.page_size", None) == 20


async def test_every_bad_variable_is_named_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_PAGE_SIZE", "ten")
    monkeypatch.setenv("ORDERS_DB__PORT", "x")
    with pytest.raises(ConfigurationError) as caught:
        async with create_app(AppModule):
            pass
    assert str(caught.value) == textwrap.dedent("""\
        Settings cannot be loaded from the environment:
          ORDERS_DATABASE_URL: Field required
          ORDERS_PAGE_SIZE: Input should be a valid integer, unable to parse string as an \
integer, got 'ten'
          ORDERS_DB__PORT: Input should be a valid integer, unable to parse string as an \
integer, got 'x'""")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_secrets_are_never_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    class Strict(BaseSettings):
        token: SecretStr = Field(min_length=32)

    monkeypatch.setenv("TOKEN", "hunter2")
    with pytest.raises(ConfigurationError, match="TOKEN: Value should have at least") as caught:
        load_settings(Strict)
    assert "hunter2" not in str(caught.value)


async def test_env_file_and_prefix_given_to_for_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("SHOP_DATABASE_URL=sqlite:///file.db\nSHOP_PAGE_SIZE=7\n")
    monkeypatch.setenv("SHOP_PAGE_SIZE", "8")  # the real environment wins over the file

    @module(imports=[ConfigModule.for_root(Settings, env_file=env_file, env_prefix="SHOP_")])
    class M:
        pass

    async with create_app(M) as app:
        assert app.get(Settings).database_url == "sqlite:///file.db"
        assert app.get(Settings).page_size == 8


async def test_not_global_is_seen_only_by_importers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_DATABASE_URL", "x")

    @module(imports=[ConfigModule.for_root(Settings, global_=False), OrdersModule])
    class M:
        pass

    with pytest.raises(ConfigurationError, match="OrdersModule cannot see it"):
        async with create_app(M):
            pass


async def test_tests_override_settings_without_touching_the_environment() -> None:
    fake = Settings(database_url="memory://")
    testing = create_testing_module(AppModule).override_provider(Settings, use_value=fake)
    async with testing.compile() as t:
        assert await t.client.send("orders.page_size", None) == 50
        assert t.get(OrdersService).settings is fake


def test_for_root_refuses_what_is_not_a_settings_class() -> None:
    with pytest.raises(ConfigurationError, match="BaseSettings subclasses"):
        ConfigModule.for_root(Settings(database_url="x"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs a BaseSettings subclass"):
        ConfigModule.for_root()


CONFIGURED_APP = """
from pydantic_settings import BaseSettings
from framework import create_app, module
from framework.config import ConfigModule


class Settings(BaseSettings):
    port_offset: int


@module(imports=[ConfigModule.for_root(Settings)])
class AppModule:
    pass


app = create_app(AppModule)
"""


def test_framework_run_prints_the_bad_variable_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "configured.py").write_text(CONFIGURED_APP)
    result = cli(
        "run", "configured:app", "--port", "0", cwd=tmp_path, extra_env={"PORT_OFFSET": "many"}
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: Settings cannot be loaded from the environment:",
        "  PORT_OFFSET: Input should be a valid integer, unable to parse string as an "
        "integer, got 'many'",
    ]


def test_a_complex_value_that_is_not_json_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    class Listy(BaseSettings):
        hosts: list[str] = []

    monkeypatch.setenv("HOSTS", "a,b")
    with pytest.raises(ConfigurationError, match=r'^Listy: error parsing value for field "hosts"'):
        load_settings(Listy)

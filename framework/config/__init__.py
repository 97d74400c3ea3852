"""Typed configuration from the environment, on pydantic-settings (NestJS's ConfigModule).

::

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="ORDERS_", env_file=".env")
        database_url: str
        page_size: int = 50

    @module(imports=[ConfigModule.for_root(Settings)], providers=[OrdersService])
    class AppModule: ...

    class OrdersService:
        def __init__(self, settings: Settings) -> None: ...   # injected by type

The settings are read when the app starts; a missing or invalid variable fails the start
with one ``ConfigurationError`` that lists every bad variable by its environment name
(``ORDERS_PAGE_SIZE: Input should be a valid integer, got 'ten'``).

Needs the ``config`` extra: ``pip install 'framework[config]'`` (pydantic-settings).
"""

from framework.config._module import ConfigModule, load_settings

__all__ = ["ConfigModule", "load_settings"]

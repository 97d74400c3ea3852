"""ConfigModule and load_settings (see the package docstring)."""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretBytes, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from framework.di.metadata import DynamicModule, Provider, module
from framework.exceptions import ConfigurationError

S = TypeVar("S", bound=BaseSettings)
EnvFile = str | Path | Sequence[str | Path] | None

MAX_SHOWN_VALUE = 60
"""Characters of a rejected value quoted in the error (secrets are never quoted)."""


def load_settings(
    settings: type[S], *, env_file: EnvFile = None, env_prefix: str | None = None
) -> S:
    """Read ``settings`` from the environment (and env files) now.

    For values needed before the app is built (a transport's address, the port); in
    providers, inject the class instead (``ConfigModule.for_root``).

    Args:
        settings: a ``pydantic_settings.BaseSettings`` subclass.
        env_file: dotenv file(s) to read, overriding the class's ``env_file``; later files
            win, real environment variables win over files, a missing file is skipped
            (pydantic-settings' rules).
        env_prefix: overrides the class's ``env_prefix``.

    Raises:
        ConfigurationError: a variable is missing or invalid; the message names each
            variable as it is spelled in the environment.
    """
    overrides: dict[str, Any] = {}
    if env_file is not None:
        overrides["_env_file"] = env_file
    if env_prefix is not None:
        overrides["_env_prefix"] = env_prefix
    try:
        return settings(**overrides)
    except ValidationError as exc:
        problems = [_describe(settings, err, env_prefix) for err in exc.errors()]
        raise ConfigurationError(
            f"{settings.__name__} cannot be loaded from the environment:\n  "
            + "\n  ".join(problems)
        ) from None
    except ValueError as exc:
        # pydantic-settings' SettingsError (a complex value that is not JSON) is a
        # ValueError; it moved modules between versions, so it is caught by its base.
        raise ConfigurationError(f"{settings.__name__}: {exc}") from None


def _describe(settings: type[BaseSettings], err: Any, env_prefix: str | None) -> str:
    config = settings.model_config
    prefix = config.get("env_prefix", "") if env_prefix is None else env_prefix
    loc = [str(part) for part in err["loc"]]
    field = settings.model_fields.get(loc[0]) if loc else None
    alias = field and (field.validation_alias or field.alias)
    # An alias is the whole variable name: pydantic-settings adds no prefix to it.
    name = alias if isinstance(alias, str) else f"{prefix}{loc[0] if loc else ''}"
    delimiter = config.get("env_nested_delimiter")
    if len(loc) > 1:
        nested = (delimiter or ".").join(loc[1:])
        name = f"{name}{delimiter}{nested}" if delimiter else f"{name} (field {nested})"
    if not config.get("case_sensitive", False):
        name = name.upper()
    message = err["msg"]
    if err["type"] != "missing" and not _is_secret(field):
        shown = repr(err["input"])
        if len(shown) > MAX_SHOWN_VALUE:
            shown = shown[:MAX_SHOWN_VALUE] + "..."
        message += f", got {shown}"
    return f"{name}: {message}"


def _is_secret(field: Any) -> bool:
    if field is None:
        return False
    hinted = [field.annotation, *typing.get_args(field.annotation)]
    return any(t in (SecretStr, SecretBytes) for t in hinted)


@module()
class ConfigModule:
    """Provides settings classes, injected by type, to every module (global)."""

    @classmethod
    def for_root(
        cls,
        *settings: type[BaseSettings],
        env_file: EnvFile = None,
        env_prefix: str | None = None,
        global_: bool = True,
    ) -> DynamicModule:
        """A module providing and exporting each of ``settings``, read at start-up.

        Args:
            settings: ``BaseSettings`` subclasses; each is a provider token.
            env_file: dotenv file(s) for all of them (see ``load_settings``).
            env_prefix: a prefix for all of them, overriding their ``env_prefix``.
            global_: visible to every module (the default, as NestJS's ``isGlobal``);
                ``False`` makes only importing modules see them.
        """
        if not settings:
            raise ConfigurationError("ConfigModule.for_root() needs a BaseSettings subclass")
        bad = [s for s in settings if not (isinstance(s, type) and issubclass(s, BaseSettings))]
        if bad:
            raise ConfigurationError(
                f"ConfigModule.for_root({bad[0]!r}): pass pydantic_settings.BaseSettings "
                "subclasses (a class, not an instance)"
            )
        providers = [Provider(s, use_factory=_loader(s, env_file, env_prefix)) for s in settings]
        return DynamicModule(cls, providers=providers, exports=list(settings), global_=global_)


def _loader(settings: type[S], env_file: EnvFile, env_prefix: str | None) -> Any:
    def load() -> S:
        return load_settings(settings, env_file=env_file, env_prefix=env_prefix)

    return load

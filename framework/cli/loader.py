"""``module:attribute`` to an ``Application``, with errors that say what to fix."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from framework.application import Application, create_app
from framework.cli.errors import CliError, UsageError, UserCodeError, user_location
from framework.di.metadata import DynamicModule, module_meta
from framework.exceptions import FrameworkError


def split_target(target: str) -> tuple[str, str]:
    """``"pkg.mod:attr"`` to ``("pkg.mod", "attr")``; a usage error when malformed."""
    module_name, sep, attr = target.partition(":")
    parts = [*module_name.split("."), *attr.split(".")]
    if not sep or not all(p.isidentifier() for p in parts):
        raise UsageError(
            f"{target!r} is not <module>:<attribute>; for example example_app.main:app "
            "(an Application) or example_app.app_module:AppModule (a @module class)"
        )
    return module_name, attr


def add_app_dir(app_dir: str) -> Path:
    """Put ``app_dir`` first on ``sys.path`` (as uvicorn's ``--app-dir`` does)."""
    path = Path(app_dir).resolve()
    if not path.is_dir():
        raise UsageError(f"--app-dir {app_dir!r} is not a directory")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    return path


def _import(module_name: str, app_dir: Path) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise CliError(
                f"Cannot import {module_name!r}: there is no module {missing!r} in {app_dir} "
                "or on sys.path; check the spelling, run from the project's folder, or pass "
                "--app-dir"
            ) from None
        raise UserCodeError(f"Importing {module_name!r} failed", exc) from None
    except FrameworkError as exc:
        where = user_location(exc) or module_name
        raise CliError(f"{where}: {exc}") from None
    except Exception as exc:
        raise UserCodeError(f"Importing {module_name!r} failed", exc) from None


def _is_app_like(value: Any) -> bool:
    return isinstance(value, (Application, DynamicModule)) or (
        isinstance(value, type) and module_meta(value) is not None
    )


def as_application(value: Any, target: str) -> Application:
    """An ``Application`` as is; a ``@module`` class (or ``DynamicModule``) through
    ``create_app`` with the in-memory transport."""
    if isinstance(value, Application):
        return value
    if _is_app_like(value):
        return create_app(value)
    what = f"the class {value.__name__}" if isinstance(value, type) else type(value).__name__
    raise CliError(
        f"{target} is {what}, not an Application or a @module class; point at "
        "`app = create_app(AppModule)` or at the root module class"
    )


def load_target(target: str, app_dir: str = ".") -> Any:
    """Import ``module:attribute`` and return the attribute (dotted attributes allowed)."""
    module_name, attr = split_target(target)
    where = add_app_dir(app_dir)
    value: Any = _import(module_name, where)
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            candidates = sorted(
                f"{module_name}:{name}"
                for name, v in vars(sys.modules[module_name]).items()
                if not name.startswith("_") and _is_app_like(v)
            )
            hint = f"; it has {', '.join(candidates)}" if candidates else ""
            raise CliError(f"Module {module_name!r} has no attribute {attr!r}{hint}") from None
    return value


def load_app(target: str, app_dir: str = ".") -> Application:
    """The ``Application`` that ``target`` names (see ``as_application``)."""
    return as_application(load_target(target, app_dir), target)

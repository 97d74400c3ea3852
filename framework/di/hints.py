"""Type hints read in the namespace where a class or handler was declared.

With ``from __future__ import annotations`` every annotation is a string that
``typing.get_type_hints`` evaluates when the app is built, in the module's globals. A
class declared inside a function (a test, a factory) may name classes that exist only in
that function's locals. So the decorators that record metadata also keep a copy of the
local names of the function that applied them (pydantic does the same for models), and
``type_hints`` looks names up there, then in the module's globals.

The copy is a plain dict taken at decoration time (never the frame): it holds the names
bound *before* the decorated class or function. The ``@module`` listing a class keeps its
own copy, looked up next, so a class may also name one defined after it in the same
function, as long as it comes before that ``@module``.
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from collections import ChainMap
from collections.abc import Callable
from typing import Any

from framework.exceptions import ConfigurationError

LOCALNS_ATTR = "__framework_localns__"


def capture_locals(target: Any, depth: int = 2) -> None:
    """Keep on ``target`` the local names of the function whose code decorates it.

    ``depth`` is that frame's distance from here: 2 when called from a decorator's inner
    function, which the user's code calls. Class bodies in between are skipped (their
    names are not visible to the methods they define); at module level nothing is kept,
    since ``get_type_hints`` reads the module's globals anyway.
    """
    frame = sys._getframe(depth)
    while not frame.f_code.co_flags & inspect.CO_OPTIMIZED:
        if frame.f_locals is frame.f_globals:
            return
        if "__qualname__" not in frame.f_locals or frame.f_back is None:
            break  # exec() with its own locals: those are the declaring namespace
        frame = frame.f_back
    names = dict(frame.f_locals)
    if names:
        setattr(target, LOCALNS_ATTR, names)


def _captured(obj: Any) -> dict[str, Any] | None:
    names = getattr(obj, "__dict__", {}).get(LOCALNS_ATTR)
    return names if isinstance(names, dict) else None


def type_hints(
    fn: Callable[..., Any],
    owner: str,
    declared_by: str,
    scopes: tuple[Any, ...] = (),
    *,
    include_extras: bool = False,
) -> dict[str, Any]:
    """``typing.get_type_hints(fn)``, also looking in the names captured on ``fn`` and then
    on each of ``scopes`` (the owning class, its module), in that order.

    ``owner`` names ``fn`` in errors ("User", "Orders.get"), ``declared_by`` the class
    whose declaration place matters ("User", "Orders"). An unknown name raises a
    ``ConfigurationError`` saying which name, where it is used, and how to make it known.
    """
    maps = [m for m in (_captured(fn), *map(_captured, scopes)) if m]
    localns = ChainMap(*maps) if maps else None
    try:
        return typing.get_type_hints(fn, localns=localns, include_extras=include_extras)
    except NameError as exc:
        raise ConfigurationError(_unresolved(fn, owner, declared_by, exc)) from exc


def _unresolved(fn: Callable[..., Any], owner: str, declared_by: str, exc: NameError) -> str:
    name = exc.name
    if not name:
        found = re.search(r"name '(\w+)' is not defined", str(exc))
        name = found.group(1) if found else None
    if name is None:
        return f"Cannot read the type hints of {owner}: {exc}"
    used = [
        "its return annotation" if param == "return" else f"parameter {param!r}"
        for param, ann in getattr(fn, "__annotations__", {}).items()
        if re.search(rf"\b{re.escape(name)}\b", ann if isinstance(ann, str) else repr(ann))
    ]
    where = f" ({', '.join(used)})" if used else ""
    return (
        f"Cannot read the type hints of {owner}: name {name!r}{where} is not defined. "
        f"Define {name} at module level or import it; inside a function, define it before "
        f"{declared_by} (or at least before the @module that lists it). With `from "
        "__future__ import annotations`, annotations are resolved by name when the app "
        "is built"
    )

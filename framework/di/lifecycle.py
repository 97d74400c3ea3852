"""Lifecycle hooks: NestJS's names, called on every provider and controller that has them."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

STARTUP_HOOKS = ("on_module_init", "on_application_bootstrap")
SHUTDOWN_HOOKS = ("on_module_destroy", "before_application_shutdown", "on_application_shutdown")


async def call_hook(instances: Iterable[Any], hook: str, *args: Any) -> None:
    """Call ``hook`` on each instance that defines it, in order, awaiting async ones."""
    for instance in instances:
        method = getattr(instance, hook, None)
        if method is None or not callable(method):
            continue
        result = method(*args) if _accepts_args(method, len(args)) else method()
        if inspect.isawaitable(result):
            await result


def _accepts_args(method: Any, count: int) -> bool:
    if count == 0:
        return False
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return len(params) >= count

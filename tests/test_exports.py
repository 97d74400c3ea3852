"""Every public package has a curated ``__all__``: each name in it exists, and every
public name it defines is in it (websockets' ``tests/test_exports.py``, for all of ours).

Internal modules are private (a leading underscore) or listed in ``INTERNAL`` below;
nothing outside ``framework`` should import them.
"""

from __future__ import annotations

import importlib
import types

import pytest

PUBLIC_PACKAGES = [
    "framework",
    "framework.asyncapi",
    "framework.cli",
    "framework.config",
    "framework.di",
    "framework.http",
    "framework.inbound",
    "framework.messaging",
    "framework.observability",
    "framework.rx",
    "framework.testing",
    "framework.testing.kafka",
    "framework.transports",
    "framework.transports.kafka",
    "framework.transports.socketio",
    "framework.transports.websocket",
]


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_all_is_exact(name: str) -> None:
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
    defined = {
        n
        for n, value in vars(package).items()
        if not n.startswith(("_", "@"))
        and not isinstance(value, types.ModuleType)
        # Our own objects; typing helpers and the like imported for annotations are not.
        and getattr(value, "__module__", "framework").startswith("framework")
    }
    unlisted = sorted(defined - set(exported))
    assert not unlisted, f"{name} defines public names missing from __all__: {unlisted}"

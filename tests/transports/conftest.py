"""Every module in ``harnesses/`` is one transport under the contract suite.

A harness module has ``NAME`` and ``serve(root_module)``: an async context manager that
starts the app on its transport and yields a ``ClientProxy`` speaking that transport.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

from tests.transports import harnesses


def _harnesses() -> list[ModuleType]:
    found = []
    for info in sorted(pkgutil.iter_modules(harnesses.__path__), key=lambda i: i.name):
        found.append(importlib.import_module(f"{harnesses.__name__}.{info.name}"))
    return found


@pytest.fixture(params=_harnesses(), ids=lambda m: m.NAME)
def harness(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    for mark in getattr(module, "MARKS", ()):
        request.applymarker(mark)
    setup = getattr(module, "SETUP_FIXTURES", ())
    for name in setup:
        request.getfixturevalue(name)
    return module

"""The frame I/O tests and the protocol tests run on asyncio's loop and on uvloop (what
``app.run()`` uses by default): the standalone server's picows protocol and the
transports it is switched between behave differently on the two loops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

BOTH_LOOPS = ("test_frame_io.py", "test_protocol.py")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if item.path.name not in BOTH_LOOPS:
        return factories
    try:
        import uvloop
    except ImportError:  # a platform without uvloop: app.run() uses asyncio there too
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories

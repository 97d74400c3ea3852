"""Task helpers the transport and the client share."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[Any]], *, timeout: float = 10.0, every: float = 0.05
) -> None:
    """Cancel ``tasks`` and wait until they end, at most ``timeout`` seconds.

    A cancel can be lost on Python 3.11: ``asyncio.wait_for`` (which redis-py wraps
    around socket writes when ``socket_timeout`` is set) drops a cancel that lands as
    its inner call completes, and the task then goes on to its next command. So the
    cancel is repeated every ``every`` seconds until the tasks are done. Never raises
    the tasks' exceptions, and a cancel of the caller is not swallowed. ``tasks`` may be
    a live collection: each round cancels only what is still in it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        # ``tasks`` may be a live set whose members leave it (a worker done reading).
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=every)

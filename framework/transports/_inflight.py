"""Messages being handled right now, counted so a graceful drain can wait for them
(WebSocket frames, Socket.IO events, SSE ``POST`` requests)."""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger("framework.transports")


class InFlight:
    """``enter`` before handling a message, ``leave`` after (in a ``finally``); ``wait``
    returns once none is being handled."""

    __slots__ = ("_idle", "count")

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None  # made only while someone waits

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if not self.count and self._idle is not None:
            self._idle.set()

    async def wait(self) -> None:
        """Until no message is being handled."""
        while self.count:
            if self._idle is None or self._idle.is_set():
                self._idle = asyncio.Event()
            await self._idle.wait()

    async def settle(self, timeout: float, what: str) -> bool:
        """``wait`` for at most ``timeout`` seconds; ``False`` (and a warning naming
        ``what``) when handlers are still running then."""
        try:
            async with asyncio.timeout(timeout):
                await self.wait()
        except TimeoutError:
            logger.warning(
                "%d %s handler(s) still running after %g s; closing anyway",
                self.count,
                what,
                timeout,
            )
            return False
        return True

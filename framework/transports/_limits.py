"""Limits every connection-oriented transport keeps the same way: connections counted by
client address, and a per-connection rate of inbound messages."""

from __future__ import annotations

import time


class PerClient:
    """Open connections by client address, at most ``limit`` each (``None``: counted,
    not limited). Behind a reverse proxy every client shares the proxy's address, so
    the transports default to no limit."""

    __slots__ = ("_counts", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def full(self, host: str | None) -> bool:
        """Whether one more connection from ``host`` would go over the limit."""
        limit = self.limit
        return limit is not None and host is not None and self._counts.get(host, 0) >= limit

    def enter(self, host: str | None) -> bool:
        """Count a connection from ``host``; ``False`` (not counted) when over the limit."""
        if self.full(host):
            return False
        if host is not None:
            self._counts[host] = self._counts.get(host, 0) + 1
        return True

    def leave(self, host: str | None) -> None:
        """Uncount a connection ``enter`` counted."""
        if host is None:
            return
        left = self._counts.get(host, 0) - 1
        if left > 0:
            self._counts[host] = left
        else:
            self._counts.pop(host, None)

    def __len__(self) -> int:
        return len(self._counts)


class RateBucket:
    """A token bucket: ``rate`` messages a second, in bursts of up to one second's worth."""

    __slots__ = ("last", "rate", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = max(rate, 1.0)
        self.last = time.monotonic()

    def take(self) -> bool:
        """Spend a token; ``False`` when the connection is over its rate."""
        now = time.monotonic()
        self.tokens = min(max(self.rate, 1.0), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

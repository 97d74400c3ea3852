"""Exponential backoff with jitter: how long to wait before the next attempt. Pure.

One helper for every retry loop (a failing handler, a fetch or a dead-letter write that
failed), so they all grow, cap and spread their waits the same way::

    backoff = Backoff(0.2, 5.0)          # 0.2 s, 0.4 s, 0.8 s... at most 5 s
    await asyncio.sleep(backoff.delay(attempt))
"""

from __future__ import annotations

import random

from framework.exceptions import ConfigurationError

__all__ = ["Backoff"]


class Backoff:
    """Waits that grow by ``multiplier`` per attempt up to ``maximum``.

    Args:
        initial: seconds before the first retry (attempt 1).
        maximum: ceiling of any wait, in seconds; jitter never goes above it.
        multiplier: growth per attempt (2.0 doubles; 1.0 keeps the wait constant).
        jitter: fraction of each wait taken off at random (0.1: up to 10 % shorter), so
            that many consumers failing together do not retry in lockstep; 0 disables it.
        rng: the random source (a seeded ``random.Random`` in tests); ``None`` uses the
            ``random`` module's.

    Raises:
        ConfigurationError: a negative wait, a multiplier below 1, or a jitter outside
            0..1.
    """

    __slots__ = ("_random", "initial", "jitter", "maximum", "multiplier")

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        multiplier: float = 2.0,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        if initial < 0 or maximum < 0:
            raise ConfigurationError(
                f"Backoff waits must be 0 or more seconds (initial={initial}, maximum={maximum})"
            )
        if multiplier < 1:
            raise ConfigurationError(f"Backoff multiplier must be at least 1, not {multiplier}")
        if not 0 <= jitter <= 1:
            raise ConfigurationError(f"Backoff jitter is a fraction from 0 to 1, not {jitter}")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
        self._random = rng.random if rng is not None else random.random

    def base(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1-based), without jitter."""
        if not self.initial:
            return 0.0
        try:
            grown = self.initial * self.multiplier ** max(attempt - 1, 0)
        except OverflowError:  # a loop that failed thousands of times in a row
            return float(self.maximum)
        return float(min(grown, self.maximum))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based), with jitter."""
        wait = self.base(attempt)
        if self.jitter:
            wait *= 1.0 - self.jitter * self._random()
        return wait

    def __repr__(self) -> str:
        return (
            f"Backoff({self.initial:g}, {self.maximum:g}, multiplier={self.multiplier:g}, "
            f"jitter={self.jitter:g})"
        )

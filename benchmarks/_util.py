"""Shared helpers for benchmarks: best-of-N timing and ratio printing."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable


async def best_rate(run: Callable[[], Awaitable[int]], repeats: int = 5) -> float:
    """Items per second of the fastest of ``repeats`` runs (noise only slows things)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        count = await run()
        best = max(best, count / (time.perf_counter() - start))
    return best


def report(name: str, ours: float, baseline: float, target: float, unit: str = "msg/s") -> bool:
    ratio = ours / baseline
    verdict = "OK" if ratio >= target else "BELOW TARGET"
    print(f"{name}: framework {ours:,.0f} {unit}, baseline {baseline:,.0f} {unit}")
    print(f"{name}: ratio {ratio:.2f} (target >= {target}) {verdict}")
    return ratio >= target

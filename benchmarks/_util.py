"""Shared helpers for benchmarks: best-of-N timing and ratio printing."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

LOOP = os.environ.get("BENCH_LOOP", "auto")
"""The event loop of benchmark servers, by uvicorn's names: ``auto`` (the default) is
what ``app.run()`` uses, uvloop when installed; ``BENCH_LOOP=asyncio`` compares."""


def loop_name() -> str:
    """The loop ``LOOP`` resolves to."""
    if LOOP != "auto":
        return LOOP
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_on_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a server's coroutine on the loop ``app.run()`` would pick (see ``LOOP``)."""
    import uvicorn

    factory = uvicorn.Config(app=None, loop=LOOP).get_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


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

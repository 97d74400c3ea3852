"""What observability costs per message, on the memory transport's event path.

One process runs the same app (``benchmarks.dispatch``: a handler validating a pydantic
model) several times over: without observability, with the logging context only, with
tracing, with metrics (needs prometheus-client), and with everything; plus the bare
loop of ``dispatch.py`` as the baseline. Variants run interleaved, best of ``rounds``,
so drift on a busy machine hits them all alike. Ratios are against "off".

Run: ``python benchmarks/observability.py [events] [rounds]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from benchmarks.dispatch import BenchModule, Counter, OrderCreated, payloads
from framework import Application, create_app
from framework.observability import Observability, configure_logging


def _metrics_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


async def main(n: int, rounds: int) -> None:
    data = payloads(n)
    metrics = _metrics_available()

    variants: dict[str, Callable[[], Application]] = {
        "off": lambda: create_app(BenchModule),
        "tracing": lambda: create_app(BenchModule, observability=Observability()),
    }
    if metrics:
        variants["metrics"] = lambda: create_app(
            BenchModule,
            observability=Observability(metrics_path="/metrics", tracing=False),
        )
        variants["metrics+tracing"] = lambda: create_app(
            BenchModule, observability=Observability(metrics_path="/metrics")
        )

    root = logging.getLogger()
    level = root.level
    async with contextlib.AsyncExitStack() as stack:
        apps = {name: await stack.enter_async_context(make()) for name, make in variants.items()}
        # The logging-context variant: apps started while configure_logging's handler
        # is installed set the message scope (no tracing, no metrics).
        handler = configure_logging("WARNING", stream=io.StringIO())
        try:
            apps["log context"] = await stack.enter_async_context(create_app(BenchModule))
        finally:
            root.removeHandler(handler)
            root.setLevel(level)

        def through(app: Application) -> Callable[[], Awaitable[int]]:
            counter, client = app.get(Counter), app.client

            async def run() -> int:
                counter.count, counter.target = 0, n
                counter.done.clear()
                for raw in data:
                    await client.emit("orders.plain", raw)
                await counter.done.wait()
                return n

            return run

        async def bare() -> int:
            validate = OrderCreated.model_validate_json
            counter = Counter()

            async def handler(event: OrderCreated) -> None:
                counter.record(event)

            for raw in data:
                await handler(validate(raw))
            return n

        runs: dict[str, Callable[[], Awaitable[int]]] = {"bare loop": bare}
        runs.update({name: through(app) for name, app in apps.items()})
        best = dict.fromkeys(runs, 0.0)
        for _ in range(rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                count = await run()
                best[name] = max(best[name], count / (time.perf_counter() - start))

    off = best["off"]
    print(f"observability cost, memory events, {n:,} events x best of {rounds}:")
    for name, rate in best.items():
        extra = (1 / rate - 1 / off) * 1e9
        ratio = rate / off
        print(f"  {name:16} {rate:>10,.0f} msg/s  ratio to off {ratio:4.2f}  ({extra:+.0f} ns/msg)")
    if not metrics:
        print("  (metrics variants skipped: prometheus-client is not installed)")


if __name__ == "__main__":
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    asyncio.run(main(events, repeats))

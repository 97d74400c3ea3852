"""Events per second through the memory transport and the full pipeline, against a bare loop.

Framework: ``client.emit`` of JSON bytes -> bounded queue -> compiled router -> one guard ->
one interceptor -> a DI-resolved controller whose handler validates a pydantic model.
Baseline: a loop doing the same validation from the same bytes and the same call.

Run: ``python benchmarks/dispatch.py [events]``. Target ratio: >= 0.7.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from benchmarks._util import Results, best_rate, json_option, report
from framework import (
    ExecutionContext,
    controller,
    create_app,
    event_pattern,
    injectable,
    module,
    use_guards,
    use_interceptors,
)


class OrderCreated(BaseModel):
    id: int
    customer: str
    total: float


@injectable()
class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = asyncio.Event()

    def record(self, event: OrderCreated) -> None:
        self.count += 1
        if self.count == self.target:
            self.done.set()


class AllowGuard:
    def can_activate(self, ctx: ExecutionContext) -> bool:
        return ctx.pattern == "orders.created"


class PassThrough:
    async def intercept(self, ctx: ExecutionContext, call_next: Any) -> Any:
        return await call_next()


@controller()
@use_guards(AllowGuard())
@use_interceptors(PassThrough())
class OrdersController:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    @event_pattern("orders.created")
    async def on_created(self, event: OrderCreated) -> None:
        self.counter.record(event)


@controller()
class PlainController:
    """The same handler without guards or interceptors: the router calls it directly."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    @event_pattern("orders.plain")
    async def on_created(self, event: OrderCreated) -> None:
        self.counter.record(event)


@module(controllers=[OrdersController, PlainController], providers=[Counter])
class BenchModule:
    pass


def payloads(n: int) -> list[bytes]:
    return [
        OrderCreated(id=i, customer=f"c{i % 100}", total=i * 1.5).model_dump_json().encode()
        for i in range(n)
    ]


async def main(n: int, results: Results) -> bool:
    """Best-of-5 rates (``results`` gets the best of each side)."""
    data = payloads(n)
    counter = Counter()

    async def bare() -> int:
        validate = OrderCreated.model_validate_json

        async def handler(event: OrderCreated) -> None:
            counter.record(event)

        for raw in data:
            await handler(validate(raw))
        return n

    async with create_app(BenchModule) as app:
        app_counter = app.get(Counter)
        client = app.client

        def through(pattern: str) -> Callable[[], Awaitable[int]]:
            async def run() -> int:
                app_counter.count, app_counter.target = 0, n
                app_counter.done.clear()
                for raw in data:
                    await client.emit(pattern, raw)
                await app_counter.done.wait()
                return n

            return run

        baseline = await best_rate(bare)
        full = await best_rate(through("orders.created"))
        plain = await best_rate(through("orders.plain"))
    ok = report("dispatch (memory, guard + interceptor + validation)", full, baseline, 0.7)
    report("dispatch (memory, validation only)", plain, baseline, 0.7)
    for scenario, ours in (("guard + interceptor + validation", full), ("validation only", plain)):
        results.add(scenario, "framework (memory transport)", ours, "events/s", ours=True)
        results.add(scenario, "bare loop", baseline, "events/s")
    return ok


if __name__ == "__main__":
    argv, json_path = json_option(sys.argv[1:])
    events = int(argv[0]) if argv else 50_000
    results = Results("dispatch")
    asyncio.run(main(events, results))
    results.save(json_path)

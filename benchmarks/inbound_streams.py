"""Inbound streams: events per second into a stream handler vs a per-event handler.

The same small events, validated into the same pydantic model, reach three handlers
that count them, one run each:

- per-event (the baseline): ``async def on_tick(self, tick: Tick)``;
- stream: ``async def on_ticks(self, ticks: AsyncIterator[Tick])`` with ``async for``;
- batched: the stream through ``framework.inbound.batched(ticks, 500, 0.05)``.

Memory: ``emit`` N events, then ``transport.join()`` (every event done). Kafka: N
pre-produced records in one partition, a fresh group from the earliest offset; the rate
is records / (last handled - first handled), so group joins do not count. Rounds
alternate the three handlers (the machine is shared: noise only slows a run); every
round is printed, then the best of each.

Run: ``python benchmarks/inbound_streams.py [--events 100000] [--records 200000]
[--rounds 3] [--no-kafka]`` (starts a broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set).
Target: the stream at least 0.7x the per-event handler on each transport (a stream
costs an item hand-off and the done bookkeeping per event).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from pydantic import BaseModel

from benchmarks._kafka import create_topic, kafka_cluster, produce, unique
from benchmarks._util import report
from framework import controller, create_app, event_pattern, module
from framework.inbound import batched
from framework.transports.kafka import KafkaTransport

KINDS = ("per-event", "stream", "batched")


class Tick(BaseModel):
    n: int
    price: float


class Sink:
    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.first = self.last = 0.0
        self.done = asyncio.Event()

    def add(self, k: int = 1) -> None:
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += k
        if self.count >= self.target:
            self.last = time.perf_counter()
            self.done.set()


def app_module(kind: str, pattern: str, sink: Sink) -> type:
    if kind == "per-event":

        @controller()
        class PerEvent:
            @event_pattern(pattern)
            async def on_tick(self, tick: Tick) -> None:
                sink.add()

        controllers: list[type] = [PerEvent]
    elif kind == "stream":

        @controller()
        class Streamed:
            @event_pattern(pattern)
            async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None:
                async for _ in ticks:
                    sink.add()

        controllers = [Streamed]
    else:

        @controller()
        class Batched:
            @event_pattern(pattern)
            async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None:
                async for batch in batched(ticks, 500, 0.05):
                    sink.add(len(batch))

        controllers = [Batched]

    @module(controllers=controllers)
    class Bench:
        pass

    return Bench


async def run_memory(kind: str, n: int) -> float:
    sink = Sink(n)
    payloads = [{"n": i, "price": i * 0.5} for i in range(n)]
    async with create_app(app_module(kind, "ticks", sink)) as app:
        start = time.perf_counter()
        for p in payloads:
            await app.client.emit("ticks", p)
        await app.memory.join()
        elapsed = time.perf_counter() - start
    assert sink.count == n, (kind, sink.count)
    return n / elapsed


async def run_kafka(kind: str, bootstrap: str, topic: str, n: int) -> float:
    sink = Sink(n)
    transport = KafkaTransport(
        bootstrap_servers=bootstrap,
        group_id=f"bench-inbound-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        commit_every=1000,
    )
    async with create_app(app_module(kind, topic, sink), transports=[transport]):
        await asyncio.wait_for(sink.done.wait(), 300)
    return (n - 1) / (sink.last - sink.first)


async def rounds(
    label: str, rounds: int, run: Callable[[str], Awaitable[float]]
) -> dict[str, float]:
    best = dict.fromkeys(KINDS, 0.0)
    for r in range(rounds):
        order = KINDS if r % 2 == 0 else tuple(reversed(KINDS))
        for kind in order:
            rate = await run(kind)
            best[kind] = max(best[kind], rate)
            print(f"{label} round {r + 1} {kind}: {rate:,.0f} events/s")
    return best


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-kafka", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    ok = True
    best = await rounds("memory", args.rounds, lambda kind: run_memory(kind, args.events))
    for kind in ("stream", "batched"):
        ok &= report(f"memory ({kind} vs per-event)", best[kind], best["per-event"], 0.7, "ev/s")
    if args.no_kafka:
        return 0 if ok else 1
    n = args.records
    values = [Tick(n=i, price=i * 0.5).model_dump_json().encode() for i in range(n)]
    with kafka_cluster() as bootstrap:
        topic = unique("bench.inbound")
        await create_topic(bootstrap, topic, 1)
        await produce(bootstrap, topic, values)
        best = await rounds("kafka", args.rounds, lambda kind: run_kafka(kind, bootstrap, topic, n))
    for kind in ("stream", "batched"):
        ok &= report(f"kafka ({kind} vs per-event)", best[kind], best["per-event"], 0.7, "rec/s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

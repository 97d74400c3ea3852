"""Kafka consume throughput: the framework's ``@event_pattern`` handler vs a bare loop.

Both read the same pre-produced records (small JSON orders, one topic) in a fresh
consumer group from the earliest offset, validate each into the same pydantic model and
call a handler that counts it; both commit offsets (at least once) every 1,000 records.

- framework: ``KafkaTransport`` (getmany batches, per-partition lanes, watermark commits).
- bare: an ``AIOKafkaConsumer.getmany`` loop with ``enable_auto_commit=False``, the same
  validator call and the same handler, ``commit()`` every 1,000 records in a background
  task (one at a time, as aiokafka's docs suggest), so commits do not stall the loop; it
  yields to the event loop once per batch so that commit can actually make progress.
- FastStream (if installed): ``@broker.subscriber`` with the model as parameter, once with
  its default ``AckPolicy.ACK_FIRST`` (auto-commit: weaker than at least once) and once
  with ``AckPolicy.ACK`` (commit after each message, at least once) on fewer records.

The rate is records / (last record handled - first record handled): group joins and
start-up do not count. Best of ``--repeats`` runs each.

Two variants, on topics of their own: ``plain`` records carry no headers;
``traceparent`` records each carry a W3C ``traceparent`` header, as a traced producer
writes them (the framework must not fall to a slower path for them).

- strongest bare: the same loop with big fetches (8 MiB per partition) and every
  buffered record taken per ``getmany``: the fastest aiokafka loop we could write.
- framework, confluent engine: ``KafkaTransport(engine="confluent")``, librdkafka under
  the same lanes and commits (if confluent-kafka is installed).
- bare confluent-kafka: ``Consumer.consume(500)`` in a worker thread (it blocks), the
  same validator call and awaited handler per record on the event loop, an asynchronous
  ``commit`` every 1,000 records. Targets: the confluent engine >= 0.8 of it and
  >= 1.3x the (aiokafka) framework.

Run: ``python benchmarks/kafka_consume.py [--records 200000] [--partitions 1]
[--variant plain|traceparent|both] [--profile] [--json PATH]`` (starts a broker unless
``KAFKA_BOOTSTRAP_SERVERS`` is set; ``--json`` writes every round for
``benchmarks/charts.py``). Target ratio: >= 0.8 in both variants.
"""

import argparse
import asyncio
import cProfile
import io
import logging
import pstats
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from typing import Any

from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]
from pydantic import BaseModel

from benchmarks._kafka import create_topic, kafka_cluster, produce, unique
from benchmarks._util import Results
from framework import controller, create_app, event_pattern, injectable, module
from framework.transports.kafka import KafkaTransport


class Order(BaseModel):
    id: int
    customer: str
    total: float


class Sink:
    """Counts handled records and notes when the first and the last arrived."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.first = self.last = self.first_cpu = self.last_cpu = 0.0
        self.done = asyncio.Event()

    def record(self, order: Order) -> None:
        self.count += 1
        if self.count == 1:
            self.first, self.first_cpu = time.perf_counter(), time.process_time()
        if self.count == self.target:
            self.last, self.last_cpu = time.perf_counter(), time.process_time()
            self.done.set()

    def rate(self) -> tuple[float, float]:
        """Records per second of wall time, and per second of this process's CPU time."""
        n = self.target - 1
        return n / (self.last - self.first), n / (self.last_cpu - self.first_cpu)


BIG_FETCH = {"max_partition_fetch_bytes": 8 * 1024 * 1024, "fetch_max_bytes": 64 * 1024 * 1024}
"""The strongest bare loop's fetch sizes (aiokafka's defaults are 1 MiB and 50 MiB)."""
STRONGEST_BATCH = 5000
"""Records per ``getmany`` of the strongest bare loop (and of the tuned framework)."""


async def run_framework(
    bootstrap: str, topic: str, n: int, *, tuned: bool = False, engine: Any = "aiokafka"
) -> tuple[float, float]:
    """The framework's defaults; ``tuned``: the strongest bare loop's fetch and batch
    sizes (``max_batch_size``, ``consumer_options``)."""
    sink = Sink(n)

    @injectable()
    class Orders:
        def __init__(self) -> None:
            self.sink = sink

    @controller()
    class OrdersController:
        def __init__(self, orders: Orders) -> None:
            self.sink = orders.sink

        @event_pattern(topic)
        async def on_order(self, order: Order) -> None:
            self.sink.record(order)

    @module(controllers=[OrdersController], providers=[Orders])
    class BenchModule:
        pass

    transport = KafkaTransport(
        bootstrap_servers=bootstrap,
        group_id=f"bench-fw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        commit_every=1000,
        engine=engine,
        **({"max_batch_size": STRONGEST_BATCH, "consumer_options": BIG_FETCH} if tuned else {}),
    )
    async with create_app(BenchModule, transports=[transport]):
        await asyncio.wait_for(sink.done.wait(), 120)
    return sink.rate()


async def run_bare(
    bootstrap: str, topic: str, n: int, *, strongest: bool = False
) -> tuple[float, float]:
    """The bare loop; ``strongest``: big fetches and big ``getmany`` batches, the
    fastest aiokafka loop we could write."""
    sink = Sink(n)
    validate = Order.__pydantic_validator__.validate_json

    async def handler(order: Order) -> None:
        sink.record(order)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **(BIG_FETCH if strongest else {}),
    )
    # Not unbounded: getmany parses every record it returns before the first is handled,
    # so one batch holding the whole topic would leave the parsing out of the timing.
    max_records = STRONGEST_BATCH if strongest else 500
    await consumer.start()
    try:
        since_commit = 0
        offsets: dict[Any, int] = {}
        committing: asyncio.Task[None] | None = None
        while sink.count < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            for tp, records in batches.items():
                for record in records:
                    await handler(validate(record.value))
                offsets[tp] = records[-1].offset + 1
                since_commit += len(records)
            if since_commit >= 1000 and (committing is None or committing.done()):
                committing = asyncio.create_task(consumer.commit(dict(offsets)))
                since_commit = 0
            # getmany does not yield while records are buffered: without this, the
            # background commit would hardly ever run (8 commits in 200,000 records).
            await asyncio.sleep(0)
        if committing is not None:
            await committing
        await consumer.commit(offsets)
    finally:
        await consumer.stop()
    return sink.rate()


async def run_bare_confluent(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    """The bare confluent-kafka loop (see the module docstring)."""
    from confluent_kafka import Consumer, TopicPartition

    sink = Sink(n)
    validate = Order.__pydantic_validator__.validate_json

    async def handler(order: Order) -> None:
        sink.record(order)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-rd-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    loop = asyncio.get_running_loop()
    try:
        since_commit = 0
        offsets: dict[tuple[str, int], int] = {}
        while sink.count < n:
            messages = await loop.run_in_executor(None, consumer.consume, 500, 0.5)
            for m in messages:
                if m.error() is not None:
                    continue
                await handler(validate(m.value()))
                offsets[(m.topic(), m.partition())] = m.offset() + 1
            since_commit += len(messages)
            if since_commit >= 1000:
                parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
                consumer.commit(offsets=parts, asynchronous=True)
                since_commit = 0
        parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        await loop.run_in_executor(None, lambda: consumer.commit(offsets=parts, asynchronous=False))
    finally:
        await loop.run_in_executor(None, consumer.close)
    return sink.rate()


async def run_faststream(bootstrap: str, topic: str, n: int, ack: bool) -> tuple[float, float]:
    from faststream import AckPolicy
    from faststream.kafka import KafkaBroker

    sink = Sink(n)
    broker = KafkaBroker(bootstrap, logger=None)
    policy = AckPolicy.ACK if ack else AckPolicy.ACK_FIRST

    @broker.subscriber(
        topic,
        group_id=f"bench-fs-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        ack_policy=policy,
    )
    async def on_order(order: Order) -> None:
        sink.record(order)

    await broker.start()
    try:
        await asyncio.wait_for(sink.done.wait(), 300)
    finally:
        await broker.stop()
    return sink.rate()


def show(label: str, rate: tuple[float, float]) -> None:
    print(f"  {label}: {rate[0]:,.0f} records/s wall, {rate[1]:,.0f} records/CPU-s")


TRACEPARENT = ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
"""The header of the ``traceparent`` variant: what a traced producer puts on every record."""


async def profiled(label: str, run: Awaitable[tuple[float, float]]) -> tuple[float, float]:
    """``run`` under cProfile; prints the top entries by own time."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        return await run
    finally:
        profile.disable()
        print(f"--- profile: {label} (top 18 by own time) ---")
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(18)
        print("\n".join(out.getvalue().splitlines()[6:]))


async def compare(
    bootstrap: str,
    label: str,
    topic: str,
    n: int,
    repeats: int,
    results: Results,
    profile: bool = False,
) -> float:
    """Interleaved runs of each side on ``topic``; prints and returns the best-of wall
    rate of the framework (the ratios are printed; every round goes to ``results``,
    under the scenario ``label``)."""
    sides: dict[str, Callable[[], Awaitable[tuple[float, float]]]] = {
        "framework": lambda: run_framework(bootstrap, topic, n),
        "framework, big fetches": lambda: run_framework(bootstrap, topic, n, tuned=True),
        "bare aiokafka": lambda: run_bare(bootstrap, topic, n),
        "strongest bare aiokafka": lambda: run_bare(bootstrap, topic, n, strongest=True),
    }
    pairs = [
        ("framework", "bare aiokafka", 0.8),
        ("framework", "strongest bare aiokafka", 0.8),
        ("framework, big fetches", "strongest bare aiokafka", 0.8),
    ]
    if find_spec("confluent_kafka") is not None:
        sides["framework, confluent engine"] = lambda: run_framework(
            bootstrap, topic, n, engine="confluent"
        )
        sides["bare confluent-kafka"] = lambda: run_bare_confluent(bootstrap, topic, n)
        pairs += [
            ("framework, confluent engine", "bare confluent-kafka", 0.8),
            ("framework, confluent engine", "framework", 1.3),
        ]
    else:
        print("confluent-kafka: not installed (pip install 'framework[confluent]'); skipped")
    rates: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    for _ in range(repeats):
        # Interleaved, so a noisy moment hurts every side alike.
        for side, run in sides.items():
            rates[side].append(await run())
            show(side, rates[side][-1])
            wall, cpu = rates[side][-1]
            ours = side.startswith("framework")
            results.add(label, side, wall, "records/s", ours=ours)
            results.add(f"{label}, by CPU", side, cpu, "records per CPU-second", ours=ours)
    if profile:
        for side in ("framework", "strongest bare aiokafka"):
            show(f"{side}, profiled", await profiled(side, sides[side]()))
    best = {side: max(r[0] for r in runs) for side, runs in rates.items()}
    best_cpu = {side: max(r[1] for r in runs) for side, runs in rates.items()}
    ours = best["framework"]
    print(f"consume ({label}): " + ", ".join(f"{s} {r:,.0f} records/s" for s, r in best.items()))
    for mine, base, target in pairs:
        wall = best[mine] / best[base]
        cpu = best_cpu[mine] / best_cpu[base]
        print(
            f"consume ({label}): {mine} / {base}: {wall:.2f} wall, {cpu:.2f} CPU "
            f"(target >= {target}) " + ("OK" if wall >= target else "BELOW TARGET")
        )
    return ours


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--variant",
        choices=("plain", "traceparent", "both"),
        default="both",
        help="records without headers, with a traceparent header each, or both runs",
    )
    parser.add_argument("--faststream-ack-records", type=int, default=2_000)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run the framework and the strongest bare loop under cProfile",
    )
    parser.add_argument("--json", metavar="PATH", help="write every round's rates to PATH")
    args = parser.parse_args()
    results = Results("kafka_consume")
    logging.basicConfig(level=logging.CRITICAL)
    n = args.records
    values = [
        Order(id=i, customer=f"customer-{i % 1000}", total=i * 0.5).model_dump_json().encode()
        for i in range(n)
    ]
    variants = {"plain": None, "traceparent": [TRACEPARENT]}
    chosen = list(variants) if args.variant == "both" else [args.variant]
    with kafka_cluster() as bootstrap:
        best_ours = 0.0
        topic = ""
        for label in chosen:
            topic = unique(f"bench.consume.{label}")
            await create_topic(bootstrap, topic, args.partitions)
            await produce(bootstrap, topic, values, variants[label])
            print(
                f"{n:,} records on {topic} ({args.partitions} partition(s), {label}), "
                f"best of {args.repeats}"
            )
            scenario = f"{args.partitions} partition{'s' if args.partitions > 1 else ''}, {label}"
            best_ours = await compare(
                bootstrap, scenario, topic, n, args.repeats, results, args.profile
            )
        results.save(args.json)
        try:
            fs_version = version("faststream")
        except PackageNotFoundError:
            print("FastStream: not installed (pip install 'faststream[kafka]'); skipped")
            return
        fs = await run_faststream(bootstrap, topic, n, ack=False)
        show(f"FastStream {fs_version} (AckPolicy.ACK_FIRST, auto-commit)", fs)
        m = min(n, args.faststream_ack_records)
        fs_ack = await run_faststream(bootstrap, topic, m, ack=True)
        show(f"FastStream {fs_version} (AckPolicy.ACK, {m:,} records)", fs_ack)
        print(
            f"consume: framework / FastStream {fs_version} auto-commit = "
            f"{best_ours / fs[0]:.1f}x; framework / FastStream AckPolicy.ACK (at least once) "
            f"= {best_ours / fs_ack[0]:,.0f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())

"""What observability costs per message, on the memory transport's event path.

One process runs the same app (``benchmarks.dispatch``: a handler validating a pydantic
model) several times over: without observability, with the logging context only, with
tracing, with metrics (needs prometheus-client), with everything, and with
OpenTelemetry spans (needs the ``otel`` extra: an SDK ``TracerProvider`` whose
``BatchSpanProcessor`` hands spans to an exporter that drops them, so the cost measured is
the framework's and the SDK's, not a collector's); plus the bare loop of ``dispatch.py``
as the baseline. Variants run interleaved, best of ``rounds``,
so drift on a busy machine hits them all alike. Ratios are against "off".

With ``--kafka``, the same comparison on the Kafka consume path (``kafka_consume.py``'s
app: pre-produced records, a fresh group per run): off vs metrics + tracing (vs
OpenTelemetry spans, when the extra is installed).

Run: ``python benchmarks/observability.py [--events N] [--rounds R] [--kafka]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks._kafka import create_topic, kafka_cluster, produce, unique
from benchmarks.dispatch import BenchModule, Counter, OrderCreated, payloads
from benchmarks.kafka_consume import Order, Sink
from framework import Application, controller, create_app, event_pattern, module
from framework.observability import Observability, configure_logging
from framework.transports.kafka import KafkaTransport


def _metrics_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def _tracer_provider() -> Any:
    """An SDK provider exporting in batches to nowhere; ``None`` without the extra."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider


async def main(n: int, rounds: int) -> None:
    data = payloads(n)
    metrics = _metrics_available()
    provider = _tracer_provider()

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
    if provider is not None:
        variants["opentelemetry"] = lambda: create_app(
            BenchModule, observability=Observability(tracer_provider=provider)
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
    if provider is None:
        print("  (opentelemetry skipped: the otel extra is not installed)")
    else:
        provider.shutdown()


async def kafka(records: int, rounds: int) -> None:
    async def consume(bootstrap: str, topic: str, observability: Observability | None) -> float:
        sink = Sink(records)

        @controller()
        class Orders:
            @event_pattern(topic)
            async def on_order(self, order: Order) -> None:
                sink.record(order)

        @module(controllers=[Orders])
        class KafkaBench:
            pass

        transport = KafkaTransport(
            bootstrap_servers=bootstrap,
            group_id=f"bench-obs-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
        )
        app = create_app(KafkaBench, transports=[transport], observability=observability)
        async with app:
            await asyncio.wait_for(sink.done.wait(), 120)
        return sink.rate()[0]

    logging.basicConfig(level=logging.CRITICAL)
    with kafka_cluster() as bootstrap:
        topic = unique("bench.observability")
        await create_topic(bootstrap, topic, 1)
        values = [
            Order(id=i, customer=f"c{i % 100}", total=i * 0.5).model_dump_json().encode()
            for i in range(records)
        ]
        await produce(bootstrap, topic, values)
        on = Observability(metrics_path="/metrics") if _metrics_available() else Observability()
        variants = {"off": None, "metrics+tracing" if on.metrics_path else "tracing": on}
        provider = _tracer_provider()
        if provider is not None:
            variants["opentelemetry"] = Observability(tracer_provider=provider)
        best = dict.fromkeys(variants, 0.0)
        for _ in range(rounds):
            for name, observability in variants.items():
                rate = await consume(bootstrap, topic, observability)
                best[name] = max(best[name], rate)
        if provider is not None:
            provider.shutdown()
    print(f"observability cost, Kafka consume, {records:,} records x best of {rounds}:")
    for name, rate in best.items():
        extra = (1 / rate - 1 / best["off"]) * 1e9
        print(
            f"  {name:16} {rate:>10,.0f} records/s  ratio to off {rate / best['off']:4.2f}"
            f"  ({extra:+.0f} ns/record)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--kafka", action="store_true", help="also measure Kafka consume")
    parser.add_argument("--records", type=int, default=100_000, help="Kafka records")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rounds))
    if args.kafka:
        asyncio.run(kafka(args.records, 3))

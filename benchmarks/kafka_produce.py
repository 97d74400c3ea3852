"""Kafka produce throughput: ``KafkaClient.emit`` vs a bare ``AIOKafkaProducer.send``.

Both send the same small order dicts to one topic, JSON-encoded by the same encoder, with
the same producer settings (``acks="all"``, idempotence on, ``linger_ms=1``), and both
wait for each record's broker ack before the sender moves on. ``--concurrency`` senders
run at once (records of concurrent senders share producer batches); a second, sequential
run (one sender) shows the per-record round trip.

Run: ``python benchmarks/kafka_produce.py [--records 100000] [--concurrency 200]``
(starts a broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set). Target ratio: >= 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from benchmarks._kafka import create_topic, kafka_cluster, unique
from benchmarks._util import Results
from framework.messaging.codecs import encode
from framework.transports.kafka import KafkaClient

SETTINGS: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 1}


def order(i: int) -> dict[str, Any]:
    return {"id": i, "customer": f"customer-{i % 1000}", "total": i * 0.5}


async def drive(send: Callable[[int], Awaitable[None]], n: int, concurrency: int) -> float:
    """Records per second with ``concurrency`` senders sharing ``n`` records."""
    counter = iter(range(n))

    async def sender() -> None:
        for i in counter:
            await send(i)

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def run_framework(bootstrap: str, topic: str, n: int, concurrency: int) -> float:
    client = KafkaClient(bootstrap_servers=bootstrap, **SETTINGS)
    await client.connect()
    try:
        await client.emit(topic, order(-1))  # warm metadata

        async def send(i: int) -> None:
            await client.emit(topic, order(i))

        return await drive(send, n, concurrency)
    finally:
        await client.close()


async def run_bare(bootstrap: str, topic: str, n: int, concurrency: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **SETTINGS)
    await producer.start()
    try:
        await producer.send_and_wait(topic, encode(order(-1)))

        async def send(i: int) -> None:
            ack = await producer.send(topic, encode(order(i)))
            await ack

        return await drive(send, n, concurrency)
    finally:
        await producer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--sequential-records", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="write every round's rates to PATH")
    args = parser.parse_args()
    results = Results("kafka_produce")
    logging.basicConfig(level=logging.CRITICAL)
    with kafka_cluster() as bootstrap:
        topic = unique("bench.produce")
        await create_topic(bootstrap, topic, 1)
        for label, n, concurrency in (
            (f"{args.concurrency} concurrent senders", args.records, args.concurrency),
            ("1 sender (sequential)", args.sequential_records, 1),
        ):
            ours: list[float] = []
            bare: list[float] = []
            for _ in range(args.repeats):
                ours.append(await run_framework(bootstrap, topic, n, concurrency))
                bare.append(await run_bare(bootstrap, topic, n, concurrency))
                results.add(label, "framework emit", ours[-1], "records/s", ours=True)
                results.add(label, "bare aiokafka send", bare[-1], "records/s")
            best_ours, best_bare = max(ours), max(bare)
            ratio = best_ours / best_bare
            print(
                f"produce, {label}: framework emit {best_ours:,.0f} records/s, "
                f"bare aiokafka send {best_bare:,.0f} records/s"
            )
            verdict = "OK" if ratio >= 0.8 else "BELOW TARGET"
            print(f"produce, {label}: ratio {ratio:.2f} (target >= 0.8) {verdict}")
    results.save(args.json)


if __name__ == "__main__":
    asyncio.run(main())

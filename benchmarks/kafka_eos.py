"""Kafka consume-transform-produce throughput: exactly once vs at least once vs a bare
aiokafka transactional loop.

Every side reads the same pre-produced records (small JSON orders, one topic) in a fresh
consumer group from the earliest offset, validates each into the same pydantic model,
and produces one output record per input (the order with its total doubled, keyed like
the input) to a fresh output topic:

- framework, at least once: ``@event_pattern(topic, emits=out)`` on ``KafkaTransport``.
- framework, exactly once: the same with ``exactly_once=True`` (a transaction per
  partition batch: outputs + offsets, one transactional producer per partition).
- bare: an ``AIOKafkaConsumer.getmany`` loop with a transactional producer per
  partition doing the same work, a transaction per batch: send the outputs, await their
  acks, ``send_offsets_to_transaction``, ``commit_transaction``.

The clock runs from the first record handled to the moment every output is visible to
a ``read_committed`` reader (the output topic's last stable offset reaches the count),
so the exactly-once sides pay for their commits. Best of ``--repeats`` runs each,
interleaved.

Run: ``python benchmarks/kafka_eos.py [--records 50000] [--partitions 2]
[--repeats 2]`` (starts a broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set). Target:
exactly once >= 0.8 of the bare transactional loop.
"""

import argparse
import asyncio
import logging
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from pydantic import BaseModel

from benchmarks._kafka import create_topic, kafka_cluster, produce, unique
from framework import controller, create_app, event_pattern, module
from framework.transports.kafka import KafkaTransport

BATCH = 500


class Order(BaseModel):
    id: int
    customer: str
    total: float


class Clock:
    """When the first record was handled."""

    def __init__(self) -> None:
        self.first = 0.0

    def tick(self) -> None:
        if not self.first:
            self.first = time.perf_counter()


async def visible(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    """Read ``topic`` as a ``read_committed`` reader until ``n`` records arrived; returns
    when the last one was seen."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    count = 0
    try:
        while count < n:
            batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
            count += sum(len(records) for records in batch.values())
        return time.perf_counter()
    finally:
        await consumer.stop()


async def run_framework(
    bootstrap: str, topic: str, partitions: int, n: int, *, exactly_once: bool
) -> float:
    clock = Clock()
    out = unique("bench.eos.out")
    await create_topic(bootstrap, out, partitions)

    @controller()
    class Doubler:
        @event_pattern(topic, emits=out)
        async def double(self, order: Order) -> Order:
            clock.tick()
            return Order(id=order.id, customer=order.customer, total=order.total * 2)

    @module(controllers=[Doubler])
    class BenchModule:
        pass

    transport = KafkaTransport(
        bootstrap_servers=bootstrap,
        group_id=f"bench-eos-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        exactly_once=exactly_once,
        max_batch_size=BATCH,
    )
    async with create_app(BenchModule, transports=[transport]):
        end = await asyncio.wait_for(visible(bootstrap, out, partitions, n), 300)
    return (n - 1) / (end - clock.first)


async def run_bare(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    clock = Clock()
    out = unique("bench.eos.out")
    await create_topic(bootstrap, out, partitions)
    group = f"bench-bare-{uuid.uuid4().hex[:8]}"
    validate = Order.__pydantic_validator__.validate_json
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    producers: dict[Any, Any] = {}
    await consumer.start()
    watcher = asyncio.create_task(visible(bootstrap, out, partitions, n))
    try:
        while not watcher.done():
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            for tp, records in batches.items():
                producer = producers.get(tp)
                if producer is None:
                    producer = producers[tp] = AIOKafkaProducer(
                        bootstrap_servers=bootstrap,
                        transactional_id=f"{group}-{tp.topic}-{tp.partition}",
                        acks="all",
                        enable_idempotence=True,
                    )
                    await producer.start()
                await producer.begin_transaction()
                acks = []
                for record in records:
                    clock.tick()
                    order = validate(record.value)
                    doubled = Order(id=order.id, customer=order.customer, total=order.total * 2)
                    value = doubled.__pydantic_serializer__.to_json(doubled)
                    acks.append(await producer.send(out, value, key=record.key))
                await asyncio.gather(*acks)
                await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, group)
                await producer.commit_transaction()
        end = await watcher
    finally:
        watcher.cancel()
        for producer in producers.values():
            await producer.stop()
        await consumer.stop()
    return (n - 1) / (end - clock.first)


async def main(records: int, partitions: int, repeats: int) -> None:
    with kafka_cluster() as bootstrap:
        topic = unique("bench.eos.in")
        await create_topic(bootstrap, topic, partitions)
        values = [
            Order(id=i, customer=f"c{i % 100}", total=i * 0.5).model_dump_json().encode()
            for i in range(records)
        ]
        await produce(bootstrap, topic, values)
        print(f"{records:,} records on {topic} ({partitions} partition(s)), best of {repeats}")
        alo, eos, bare = [], [], []
        for _ in range(repeats):
            alo.append(
                await run_framework(bootstrap, topic, partitions, records, exactly_once=False)
            )
            print(f"  framework at least once: {alo[-1]:,.0f} records/s")
            eos.append(
                await run_framework(bootstrap, topic, partitions, records, exactly_once=True)
            )
            print(f"  framework exactly once: {eos[-1]:,.0f} records/s")
            bare.append(await run_bare(bootstrap, topic, partitions, records))
            print(f"  bare aiokafka transactional loop: {bare[-1]:,.0f} records/s")
        ratio = max(eos) / max(bare)
        print(
            f"consume-transform-produce: exactly once {max(eos):,.0f}, at least once "
            f"{max(alo):,.0f}, bare transactional {max(bare):,.0f} records/s"
        )
        print(f"exactly once / at least once: {max(eos) / max(alo):.2f}")
        print(
            f"exactly once / bare transactional loop: {ratio:.2f} (target >= 0.8) "
            + ("OK" if ratio >= 0.8 else "BELOW TARGET")
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.records, args.partitions, args.repeats))

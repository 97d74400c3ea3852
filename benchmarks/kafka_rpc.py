"""Kafka request/reply latency: sequential ``KafkaClient.send`` to a ``@message_pattern``.

Framework: a ``KafkaTransport`` app whose handler validates a small pydantic model and
returns it; a ``KafkaClient`` sends requests one after the other and times each round
trip (request produced and acked, handled, reply produced, reply read).
Baseline: the same exchange hand-written on aiokafka: a server consumer (``getmany``
loop, commits in the background) that validates and produces the reply, and a client that produces
the request and waits for the reply on its assigned reply partition. Same producer
settings as the framework's defaults (client ``linger_ms=1``, server ``linger_ms=0``,
``acks="all"``, idempotence on).

Run: ``python benchmarks/kafka_rpc.py [--requests 2000]`` (starts a broker unless
``KAFKA_BOOTSTRAP_SERVERS`` is set). Target: framework p50 < 5 ms.
"""

import argparse
import asyncio
import contextlib
import logging
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from pydantic import BaseModel

from benchmarks._kafka import create_topic, kafka_cluster, unique
from framework import controller, create_app, message_pattern, module
from framework.messaging.codecs import encode
from framework.transports.kafka import KafkaClient, KafkaTransport


class Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.event.set()


class Order(BaseModel):
    id: int
    customer: str
    total: float


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 * 1000, p99 * 1000


async def timed(n: int, call: Callable[[int], Awaitable[None]]) -> list[float]:
    for i in range(50):  # warm-up: metadata, connections, JIT of the broker
        await call(i)
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - start)
    return samples


def payload(i: int) -> dict[str, Any]:
    return {"id": i, "customer": "customer-1", "total": 1.5}


async def run_framework(bootstrap: str, topic: str, n: int) -> list[float]:
    @controller()
    class Orders:
        @message_pattern(topic)
        async def get(self, order: Order) -> Order:
            return order

    @module(controllers=[Orders])
    class RpcModule:
        pass

    transport = KafkaTransport(bootstrap_servers=bootstrap, group_id=unique("bench-rpc"))
    client = KafkaClient(bootstrap_servers=bootstrap, reply_patterns=[topic])
    async with create_app(RpcModule, transports=[transport]), client:

        async def call(i: int) -> None:
            reply = await client.send(topic, payload(i), timeout=10)
            assert reply["id"] == i

        return await timed(n, call)


async def run_bare(bootstrap: str, topic: str, n: int) -> list[float]:
    reply_topic = f"{topic}.reply"
    validate = Order.__pydantic_validator__.validate_json
    server_consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=unique("bench-rpc-bare"), enable_auto_commit=False
    )
    server_producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    client_producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=1
    )
    client_consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=100)
    waiting: dict[bytes, asyncio.Future[bytes]] = {}
    for part in (server_producer, client_producer, server_consumer, client_consumer):
        await part.start()
    reply_tp = TopicPartition(reply_topic, 0)
    client_consumer.assign([reply_tp])
    await client_consumer.seek_to_end(reply_tp)
    listener = Assigned()
    server_consumer.subscribe([topic], listener=listener)
    await listener.event.wait()
    for tp in server_consumer.assignment():
        await server_consumer.position(tp)

    committing: list[asyncio.Task[None]] = []

    async def serve() -> None:
        while True:
            batches = await server_consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    order = validate(record.value)
                    headers = dict(record.headers)
                    await server_producer.send(
                        reply_topic,
                        encode(order),
                        partition=0,
                        headers=[("kafka_correlationId", headers["kafka_correlationId"])],
                    )
                # Commit in the background, one at a time, so it adds no latency.
                if not committing or committing[-1].done():
                    offsets = {tp: records[-1].offset + 1}
                    committing.append(asyncio.create_task(server_consumer.commit(offsets)))

    async def read() -> None:
        while True:
            batches = await client_consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    fut = waiting.pop(dict(record.headers)["kafka_correlationId"], None)
                    if fut is not None:
                        fut.set_result(record.value)

    tasks = [asyncio.create_task(serve()), asyncio.create_task(read())]
    try:

        async def call(i: int) -> None:
            cid = uuid.uuid4().hex.encode()
            fut = waiting[cid] = asyncio.get_running_loop().create_future()
            await client_producer.send_and_wait(
                topic, encode(payload(i)), headers=[("kafka_correlationId", cid)]
            )
            await asyncio.wait_for(fut, 10)

        return await timed(n, call)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for part in (server_producer, client_producer, server_consumer, client_consumer):
            await part.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    with kafka_cluster() as bootstrap:
        topic = unique("bench.rpc")
        await create_topic(bootstrap, topic, 1)
        await create_topic(bootstrap, f"{topic}.reply", 1)
        ours = percentiles(await run_framework(bootstrap, topic, args.requests))
        bare = percentiles(await run_bare(bootstrap, topic, args.requests))
        print(f"rpc ({args.requests:,} sequential requests):")
        print(f"  framework send: p50 {ours[0]:.2f} ms, p99 {ours[1]:.2f} ms")
        print(f"  bare aiokafka:  p50 {bare[0]:.2f} ms, p99 {bare[1]:.2f} ms")
        verdict = "OK" if ours[0] < 5 else "ABOVE TARGET"
        print(
            f"rpc: framework p50 {ours[0]:.2f} ms (target < 5 ms) {verdict}; "
            f"p50 ratio framework/bare {ours[0] / bare[0]:.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())

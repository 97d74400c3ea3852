"""Shared helpers for the Kafka benchmarks: a broker, topics, and pre-produced records."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from framework.testing.kafka import BOOTSTRAP_ENV_VAR, LocalKafkaBroker
from framework.transports.kafka._admin import TopicCreator


@contextlib.contextmanager
def kafka_cluster() -> Iterator[str]:
    """``$KAFKA_BOOTSTRAP_SERVERS`` if set, else a local broker started for the run.

    The local broker runs with the JIT's full tiers (the test default stops at C1 for a
    faster start, which slows the broker under load).
    """
    existing = os.environ.get(BOOTSTRAP_ENV_VAR)
    if existing:
        yield existing
        return
    with LocalKafkaBroker(jvm_args=(), heap="-Xms512m -Xmx1g") as broker:
        yield broker.bootstrap_servers


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    creator = TopicCreator(
        bootstrap, partitions=partitions, replication_factor=1, timeout=30.0, options={}
    )
    try:
        await creator.ensure([topic])
    finally:
        await creator.close()


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Write ``values`` fast (large batches, one ack wait per window), each with
    ``headers`` if given."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        window = []
        for value in values:
            window.append(await producer.send(topic, value, headers=headers))
            if len(window) >= 20_000:
                for fut in window:
                    await fut
                window = []
        for fut in window:
            await fut
    finally:
        await producer.stop()

"""``KafkaRelay``: carry ``app.publish`` events to every instance of the app over Kafka."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiokafka import ConsumerRebalanceListener  # type: ignore[import-untyped]
from aiokafka.errors import ConsumerStoppedError, KafkaError  # type: ignore[import-untyped]

from framework.backoff import Backoff
from framework.exceptions import TransportError
from framework.transports.base import Deliver, PublishRelay
from framework.transports.kafka._admin import (
    TopicCreator,
    cancel_and_wait,
    split_options,
    stop_quietly,
)
from framework.transports.kafka._engines import EngineName
from framework.transports.kafka._engines import engine as engine_named
from framework.transports.kafka.security import KafkaSecurity, connect_error, start_within
from framework.transports.kafka.wire import header

logger = logging.getLogger("framework.kafka")

PATTERN_HEADER = "framework_pattern"

_READ_BACKOFF = Backoff(0.2, 5.0)
"""Waits between failed fetches of the broadcast topic."""


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.event.set()


class KafkaRelay(PublishRelay):
    """Every instance reads one broadcast topic in a consumer group of its own.

    Each record is one published event: key = pattern, header ``framework_pattern`` =
    pattern, value = the JSON payload. Instances start at the topic's end, so they see
    events published after they started, including their own. The event id handed to
    push transports is ``"<partition>-<offset>"``: the same on every instance.

    Args:
        bootstrap_servers: the cluster.
        topic: the broadcast topic (created if missing).
        group_prefix: each instance's group is ``<group_prefix>-<random id>``.
        start_timeout: seconds ``start`` waits for the topic to be assigned.
        security: TLS and SASL settings (``KafkaSecurity``) of its producer, consumer
            and admin client; ``None``: PLAINTEXT. A failed login, an untrusted
            certificate or a mismatched protocol fails ``start`` with a
            ``TransportError`` naming it.
        engine: the Kafka client library, ``"aiokafka"`` (default) or ``"confluent"``
            (the ``framework[confluent]`` extra); see ``KafkaTransport``.
        **options: aiokafka options routed by name (client id...).
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str | list[str] = "127.0.0.1:9092",
        topic: str = "framework.broadcast",
        group_prefix: str = "framework-relay",
        start_timeout: float = 30.0,
        security: KafkaSecurity | None = None,
        engine: EngineName = "aiokafka",
        **options: Any,
    ) -> None:
        self._engine = engine_named(engine, "KafkaRelay")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.group_id = f"{group_prefix}-{uuid.uuid4().hex[:12]}"
        self.start_timeout = start_timeout
        self.security = security
        consumer, producer, admin = split_options(
            options, "KafkaRelay", security, self._engine.name
        )
        self._consumer_options = consumer
        self._producer_options = {"acks": "all", "enable_idempotence": True, **producer}
        self._engine.check(self._consumer_options, "KafkaRelay")
        self._engine.check(self._producer_options, "KafkaRelay")
        self._admin_options = admin
        self._producer: Any = None
        self._consumer: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver) -> None:
        """Join the topic at its end; return once positions are fixed."""
        topics = TopicCreator(
            self.bootstrap_servers,
            partitions=None,
            replication_factor=None,
            timeout=self.start_timeout,
            options=self._admin_options,
        )
        try:
            # The producer first: a login or TLS failure then surfaces as a connection
            # error (explained below), not as a failed topic creation.
            self._producer = self._engine.producer(
                bootstrap_servers=self.bootstrap_servers, **self._producer_options
            )
            await start_within(
                self._producer,
                self.start_timeout,
                "Kafka relay could not start on",
                self.bootstrap_servers,
                self.security,
            )
            await topics.ensure([self.topic])
            self._consumer = self._engine.consumer(
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                **self._consumer_options,
            )
            await self._consumer.start()
            listener = _Assigned()
            self._consumer.subscribe([self.topic], listener=listener)
            self._reader = asyncio.create_task(self._read(deliver), name="kafka-relay")
            async with asyncio.timeout(self.start_timeout):
                await listener.event.wait()
                for tp in self._consumer.assignment():
                    await self._consumer.position(tp)
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, KafkaError | OSError | TimeoutError):
                raise await connect_error(
                    "Kafka relay could not start on",
                    exc,
                    self.bootstrap_servers,
                    self.security,
                    self._admin_options,
                    min(self.start_timeout, 10.0),
                ) from exc
            raise
        finally:
            await topics.close()

    async def _read(self, deliver: Deliver) -> None:
        consumer = self._consumer
        failures = 0
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000)
                failures = 0
            except ConsumerStoppedError:
                return
            except Exception as exc:
                failures += 1
                delay = _READ_BACKOFF.delay(failures)
                logger.error("Kafka relay fetch failed (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            for tp, records in batches.items():
                for record in records:
                    raw = header(record.headers, PATTERN_HEADER) or record.key
                    if raw is None or record.value is None:
                        continue
                    try:
                        await deliver(
                            raw.decode(errors="replace"),
                            record.value,
                            f"{tp.partition}-{record.offset}",
                        )
                    except Exception:
                        logger.exception("Delivering a relayed event failed")

    async def stop(self) -> None:
        """Stop reading and leave the group."""
        reader, self._reader = self._reader, None
        await cancel_and_wait(reader)
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        await stop_quietly("KafkaRelay", consumer, producer)

    async def publish(self, pattern: str, payload: bytes) -> None:
        """Produce the event and wait for the broker's ack.

        Raises:
            TransportError: the relay is not started or the broker refused the record.
        """
        producer = self._producer
        if producer is None:
            raise TransportError("The Kafka relay is not running; start the app first")
        try:
            await producer.send_and_wait(
                self.topic,
                payload,
                key=pattern.encode(),
                headers=[(PATTERN_HEADER, pattern.encode())],
            )
        except KafkaError as exc:
            raise TransportError(f"Kafka relay could not publish {pattern!r}: {exc!r}") from exc

"""Shared plumbing: routing aiokafka options, creating topics before they are used."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from framework.exceptions import ConfigurationError, TransportError
from framework.transports.kafka.security import SECURITY_OPTIONS, KafkaSecurity

logger = logging.getLogger("framework.kafka")

_TOPIC_EXISTS = 36
# Options the framework sets itself: passing them would silently change its guarantees.
_RESERVED = frozenset({"loop", "bootstrap_servers", "group_id", "enable_auto_commit"})


def _parameters(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls).parameters) - {"self", "topics"}


CONSUMER_OPTIONS = _parameters(AIOKafkaConsumer)
PRODUCER_OPTIONS = _parameters(AIOKafkaProducer)
ADMIN_OPTIONS = _parameters(AIOKafkaAdminClient)


def split_options(
    options: Mapping[str, Any],
    owner: str,
    security: KafkaSecurity | None = None,
    engine: str = "aiokafka",
) -> tuple[dict[str, Any], ...]:
    """Route aiokafka keyword options to the classes that accept them: the one place
    where the options of every consumer, producer and admin client are collected.

    Args:
        options: the owner's ``**options``.
        owner: ``"KafkaTransport"``...: names the owner in errors.
        security: connection security, added to all three (``None``: PLAINTEXT).
        engine: the consumer's and producer's engine: with ``"confluent"`` they get
            the security settings by librdkafka's names (the admin client is
            aiokafka's on both engines).

    Returns:
        ``(consumer, producer, admin)`` option dicts; an option shared by several
        classes (``client_id``, the security settings...) goes to each.

    Raises:
        ConfigurationError: an option no aiokafka class accepts, one the framework
            owns, or a security setting given outside ``security=``.
    """
    shared = security.aiokafka_options() if security is not None else {}
    clients = shared
    if security is not None and engine == "confluent":
        clients = security.librdkafka_config()
    consumer: dict[str, Any] = dict(clients)
    producer: dict[str, Any] = dict(clients)
    admin: dict[str, Any] = dict(shared)
    for name, value in options.items():
        if name in _RESERVED:
            raise ConfigurationError(
                f"{owner}: {name!r} is set by the framework; use the keyword argument "
                "of the same meaning instead (see docs/transports/kafka.md)"
            )
        if name in SECURITY_OPTIONS:
            raise ConfigurationError(
                f"{owner}: pass {name!r} as security=KafkaSecurity(...) (see "
                "docs/transports/kafka.md, Security)"
            )
        known = False
        for accepted, target in (
            (CONSUMER_OPTIONS, consumer),
            (PRODUCER_OPTIONS, producer),
            (ADMIN_OPTIONS, admin),
        ):
            if name in accepted:
                target[name] = value
                known = True
        if not known:
            raise ConfigurationError(
                f"{owner}: unknown option {name!r}; pass AIOKafkaConsumer or "
                "AIOKafkaProducer keyword arguments"
            )
    return consumer, producer, admin


class TopicCreator:
    """Creates topics once (idempotent), so producing to them never waits on a missing
    topic and consumers see them at once.

    Args:
        bootstrap_servers: the cluster.
        partitions: partitions of a new topic; ``None`` uses the broker's
            ``num.partitions``.
        replication_factor: replicas of a new topic; ``None`` uses the broker's
            ``default.replication.factor``.
        timeout: seconds to wait for the broker to create a topic and publish it.
        options: aiokafka admin options (security settings, client id...).
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        partitions: int | None,
        replication_factor: int | None,
        timeout: float,
        options: Mapping[str, Any],
    ) -> None:
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.timeout = timeout
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **options)
        self._started = False
        self._known: set[str] = set()
        self._lock = asyncio.Lock()

    async def ensure(self, topics: Iterable[str]) -> None:
        """Create the topics that do not exist yet and wait until the broker serves them.

        Raises:
            TransportError: the broker refused or did not answer within ``timeout``.
        """
        wanted = [t for t in dict.fromkeys(topics) if t not in self._known]
        if not wanted:
            return
        async with self._lock:
            wanted = [t for t in wanted if t not in self._known]
            if not wanted:
                return
            try:
                async with asyncio.timeout(self.timeout):
                    await self._create(wanted)
            except (KafkaError, TimeoutError, OSError) as exc:
                raise TransportError(
                    f"Could not create Kafka topics {wanted}: {exc!r}; create them "
                    "yourself or check the broker and its ACLs"
                ) from exc
            self._known.update(wanted)

    async def _create(self, topics: list[str]) -> None:
        if not self._started:
            await self._admin.start()
            self._started = True
        # -1/-1 asks the broker for its defaults (KIP-464); aiokafka's NewTopic only
        # accepts -1 when replica assignments are given, so pass an empty mapping.
        partitions = -1 if self.partitions is None else self.partitions
        replicas = -1 if self.replication_factor is None else self.replication_factor
        default = partitions == -1 or replicas == -1
        new = [
            NewTopic(t, partitions, replicas, replica_assignments={} if default else None)
            for t in topics
        ]
        response = await self._admin.create_topics(new)
        for topic, code, message in response.topic_errors:
            if code not in (0, _TOPIC_EXISTS):
                raise TransportError(f"Kafka refused to create topic {topic!r}: {message}")
        # Creation is eventually consistent: wait until metadata shows every partition led.
        while True:
            described = await self._admin.describe_topics(topics)
            if all(_ready(t) for t in described):
                return
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self._admin.close()


def _ready(topic: Mapping[str, Any]) -> bool:
    parts = topic.get("partitions") or []
    return topic.get("error_code") == 0 and bool(parts) and all(p["leader"] >= 0 for p in parts)


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def stop_quietly(what: str, *clients: Any, timeout: float | None = None) -> None:
    """Stop aiokafka consumers/producers (``None`` skipped), logging failures: shutdown
    must go on whatever one of them does. ``timeout`` bounds each stop, in seconds."""
    for client in clients:
        if client is None:
            continue
        # In a task of its own, waited for without cancelling the caller: aiokafka's
        # stop on a dead broker may swallow a cancellation, which under
        # ``asyncio.timeout`` would stay pending on the caller and end it at its next
        # await (leaving the next client unstopped).
        stopping = asyncio.ensure_future(client.stop())
        done, _ = await asyncio.wait({stopping}, timeout=timeout)
        if not done:
            stopping.cancel()
            logger.error(
                "%s: a Kafka %s did not stop in %s s", what, type(client).__name__, timeout
            )
        elif not stopping.cancelled() and stopping.exception() is not None:
            logger.error(
                "%s: a Kafka %s did not stop cleanly",
                what,
                type(client).__name__,
                exc_info=stopping.exception(),
            )


async def finish_tasks(tasks: Iterable[asyncio.Future[Any]], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``tasks`` (0: not at all), then cancel the
    ones still running and wait for them to end."""
    tasks = list(tasks)
    if not tasks:
        return
    if timeout > 0:
        _, pending = await asyncio.wait(tasks, timeout=timeout)
    else:
        pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    if pending:
        logger.warning("Cancelled %d Kafka handler task(s) still running", len(pending))
        await asyncio.gather(*pending, return_exceptions=True)

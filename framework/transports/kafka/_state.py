"""Stateful handlers' state: a ``WindowStore`` per window handler and input partition,
and the ``KafkaTable`` dicts of each partition, each backed by a compacted changelog
topic (tables: ``<group_id>-table-<name>-changelog``).

Every change a store makes is produced to the handler's changelog topic
(``<group_id>-<Controller>.<method>-changelog``, as many partitions as the input topic, input
partition ``p`` -> changelog partition ``p``) together with the handler's other outputs:
in exactly-once mode in the same transaction as the input offset, so the changelog holds
exactly the state of the committed offset. Before a partition's first batch (after an
assignment, or after an aborted transaction) its stores are rebuilt by reading their
changelog partitions to the end (``read_committed``); a revoked partition's stores are
dropped.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

from framework.exceptions import TransportError
from framework.messaging.router import MessageHandler
from framework.transports.kafka._tables import KafkaTable
from framework.transports.kafka._windows import Reducer, Window, WindowStore

logger = logging.getLogger("framework.kafka")

_TOPIC_EXISTS = 36
_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]")


class PartitionState:
    """The window stores and tables of every assigned partition.

    Args:
        specs: each window handler's window and reducer.
        tables: the tables the transport serves.
        consumer: the group's consumer (partition counts of input topics).
        bootstrap_servers: the cluster.
        group_id: names the changelog topics.
        consumer_options: options of the consumers that read changelogs back.
        admin_options: options of the admin client that creates changelogs.
        max_windows: open windows per handler and partition, at most.
        timeout: seconds a restore may take.
    """

    def __init__(
        self,
        specs: Mapping[MessageHandler, tuple[Window, Reducer]],
        tables: Iterable[KafkaTable],
        consumer: Any,
        *,
        bootstrap_servers: str | list[str],
        group_id: str,
        consumer_options: Mapping[str, Any],
        admin_options: Mapping[str, Any],
        max_windows: int,
        timeout: float,
    ) -> None:
        self.specs = dict(specs)
        self.tables = list(tables)
        for table in self.tables:
            table.changelog = _UNSAFE.sub("_", f"{group_id}-table-{table.name}-changelog")
        self._consumer = consumer
        self._bootstrap = bootstrap_servers
        self.group_id = group_id
        self._consumer_options = dict(consumer_options)
        self._admin_options = dict(admin_options)
        self.max_windows = max_windows
        self.timeout = timeout
        self._stores: dict[tuple[MessageHandler, Any], WindowStore] = {}
        self._created: set[str] = set()
        self._lock = asyncio.Lock()
        self.late = 0
        self.closed = 0

    def changelog(self, handler: MessageHandler) -> str:
        """``<group_id>-<Controller>.<method>-changelog``: renaming either starts the
        handler's state afresh."""
        name = f"{handler.controller.__name__}.{handler.func.__name__}"
        return _UNSAFE.sub("_", f"{self.group_id}-{name}-changelog")

    def stores_of(self, tp: Any) -> list[tuple[MessageHandler, WindowStore]]:
        """The window stores of partition ``tp``."""
        return [(h, s) for (h, p), s in self._stores.items() if p == tp]

    def store(self, handler: MessageHandler, tp: Any) -> WindowStore:
        return self._stores[(handler, tp)]

    @property
    def size(self) -> int:
        """Open windows and table keys held in memory, over every partition."""
        return sum(len(s) for s in self._stores.values()) + sum(len(t) for t in self.tables)

    @property
    def late_records(self) -> int:
        """Records dropped as late (their windows had closed), since start."""
        return self.late + sum(s.late for s in self._stores.values())

    @property
    def windows_closed(self) -> int:
        """Windows closed and emitted, since start."""
        return self.closed + sum(s.closed_count for s in self._stores.values())

    # -- partitions ------------------------------------------------------------------

    async def ensure(self, tp: Any, handlers: Iterable[MessageHandler]) -> None:
        """Rebuild the tables of ``tp``, and its stores for ``handlers``, that are not
        in memory."""
        missing = [h for h in handlers if h in self.specs and (h, tp) not in self._stores]
        tables = [t for t in self.tables if not t._has(tp)]
        if not missing and not tables:
            return
        async with asyncio.timeout(self.timeout):
            for table in tables:
                table._restore(tp, await self._read(table.changelog, tp))
            for handler in missing:
                window, reducer = self.specs[handler]
                store = WindowStore(window, reducer, max_windows=self.max_windows)
                store.restore(await self._read(self.changelog(handler), tp))
                self._stores[(handler, tp)] = store
                logger.info(
                    "Kafka window state of %s on %s rebuilt: %d open windows",
                    handler.name,
                    tp,
                    len(store),
                )

    def drop(self, partitions: Iterable[Any]) -> None:
        """Forget the stores of ``partitions`` (revoked, or their transaction aborted:
        the changelog has what was committed)."""
        gone = set(partitions)
        for table in self.tables:
            for tp in gone:
                table._drop(tp)
        for key in [k for k in self._stores if k[1] in gone]:
            store = self._stores.pop(key)
            self.late += store.late
            self.closed += store.closed_count

    def clear(self) -> None:
        """Forget every partition's state (the transport stopped)."""
        self.drop({tp for _, tp in self._stores} | {tp for t in self.tables for tp in t._data})

    async def _read(self, topic: str, tp: Any) -> list[tuple[bytes, bytes | None]]:
        partitions = self._consumer.partitions_for_topic(tp.topic) or {tp.partition}
        await self._create(topic, max(partitions) + 1)
        reader = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **self._consumer_options,
        )
        await reader.start()
        entries: list[tuple[bytes, bytes | None]] = []
        try:
            ctp = TopicPartition(topic, tp.partition)
            reader.assign([ctp])
            await reader.seek_to_beginning(ctp)
            end = (await reader.end_offsets([ctp]))[ctp]
            while await reader.position(ctp) < end:
                for records in (await reader.getmany(ctp, timeout_ms=200)).values():
                    entries.extend((r.key, r.value) for r in records)
        finally:
            await reader.stop()
        return entries

    async def _create(self, topic: str, partitions: int) -> None:
        if topic in self._created:
            return
        async with self._lock:
            if topic in self._created:
                return
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **self._admin_options)
            await admin.start()
            try:
                new = NewTopic(
                    topic,
                    partitions,
                    -1,
                    replica_assignments={},
                    topic_configs={"cleanup.policy": "compact"},
                )
                response = await admin.create_topics([new])
                for name, code, message in response.topic_errors:
                    if code not in (0, _TOPIC_EXISTS):
                        raise TransportError(
                            f"Kafka refused to create changelog topic {name!r}: {message}"
                        )
                while True:
                    described = await admin.describe_topics([topic])
                    parts = described[0].get("partitions") or []
                    if described[0].get("error_code") == 0 and len(parts) >= partitions:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await admin.close()
            self._created.add(topic)

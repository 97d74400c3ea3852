"""The confluent-kafka (librdkafka) engine, behind the aiokafka-shaped interface the
transport uses (see ``__init__.py``).

How librdkafka is driven from asyncio:

- Every call on the librdkafka consumer happens on one thread of its own: in
  confluent-kafka 2.16 a call from a second thread waits until no call runs, and a
  thread polling in a loop starves it. ``getmany`` is a poll there; ``commit``,
  ``seek`` and other calls of the event loop are queued as jobs that the thread runs
  between two polls (every ``_SLICE`` seconds at most) or at once when idle.
  ``assignment``, start positions and high watermarks are answered from copies.
- Rebalances: ``on_assign``/``on_revoke`` run on the consume thread. Each runs the
  aiokafka listener's coroutine on the event loop and waits for it, so a revoked
  partition's lanes have stopped and its progress is committed before librdkafka gives
  it up (the listener's commit is a job the waiting thread runs). Partitions start at
  explicit offsets (the committed one, else the ``auto.offset.reset`` end), so
  ``position`` is known at once.
- The producer's delivery reports are served by a poller thread and handed to the
  loop once per ``poll`` (one ``call_soon_threadsafe`` for many acks).
- Errors are raised as ``aiokafka.errors`` classes, so the transport catches one kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import confluent_kafka
from aiokafka.errors import (  # type: ignore[import-untyped]
    CommitFailedError,
    ConsumerStoppedError,
    KafkaConnectionError,
    KafkaError,
)
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped]
from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as RdPartition

from framework.exceptions import ConfigurationError

logger = logging.getLogger("framework.kafka")
_LIBRDKAFKA = logging.getLogger("framework.kafka.librdkafka")

# -- options: aiokafka names to librdkafka's -------------------------------------------

# Security settings come from ``KafkaSecurity.librdkafka_config()`` (by librdkafka's
# names already), never from aiokafka names here.
_NAMES = {
    "client_id": "client.id",
    "request_timeout_ms": "socket.timeout.ms",
    "metadata_max_age_ms": "metadata.max.age.ms",
    "retry_backoff_ms": "retry.backoff.ms",
    "connections_max_idle_ms": "connections.max.idle.ms",
    # consumer
    "group_id": "group.id",
    "enable_auto_commit": "enable.auto.commit",
    "auto_offset_reset": "auto.offset.reset",
    "isolation_level": "isolation.level",
    "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms",
    "max_poll_interval_ms": "max.poll.interval.ms",
    "fetch_max_wait_ms": "fetch.wait.max.ms",
    "fetch_min_bytes": "fetch.min.bytes",
    "fetch_max_bytes": "fetch.max.bytes",
    "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    # producer
    "acks": "acks",
    "enable_idempotence": "enable.idempotence",
    "linger_ms": "linger.ms",
    "compression_type": "compression.type",
    "max_request_size": "message.max.bytes",
}


def check(options: Mapping[str, Any], owner: str) -> None:
    """Raise ``ConfigurationError`` for an aiokafka option librdkafka has no name for.

    Keys with a dot are librdkafka's own (``consumer_options={"fetch.min.bytes": 1}``)
    and pass unchanged.
    """
    for name in options:
        if "." not in name and name not in _NAMES:
            raise ConfigurationError(
                f'{owner}(engine="confluent"): aiokafka option {name!r} has no librdkafka '
                "equivalent here; pass librdkafka settings by their own names in "
                'consumer_options/producer_options (e.g. {"ssl.ca.location": ...})'
            )


def config(bootstrap_servers: str | list[str], options: Mapping[str, Any]) -> dict[str, Any]:
    """A librdkafka configuration from aiokafka-named (or dotted librdkafka) options."""
    servers = (
        bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)
    )
    out: dict[str, Any] = {"bootstrap.servers": servers}
    for name, value in options.items():
        if value is None:
            continue
        key = name if "." in name else _NAMES[name]
        out[key] = "none" if key == "compression.type" and value is None else value
    return out


def _error(exc: BaseException) -> KafkaError:
    """An aiokafka error for a librdkafka one (``retriable`` kept)."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    if not isinstance(err, confluent_kafka.KafkaError):
        return KafkaError(repr(exc))
    cls = KafkaConnectionError if err.code() in _CONNECTION else KafkaError
    if err.code() in _COMMIT_REFUSED:
        cls = CommitFailedError
    found: KafkaError = cls(f"{err.name()}: {err.str()}")
    found.retriable = err.retriable()
    return found


_E = confluent_kafka.KafkaError
_COMMIT_REFUSED = frozenset(
    {
        _E.REBALANCE_IN_PROGRESS,
        _E.ILLEGAL_GENERATION,
        _E.UNKNOWN_MEMBER_ID,
        _E._ASSIGNMENT_LOST,
        _E.FENCED_INSTANCE_ID,
    }
)
_CONNECTION = frozenset({_E._TRANSPORT, _E._ALL_BROKERS_DOWN, _E._TIMED_OUT, _E._RESOLVE})


async def _probe(client: Any, timeout: float, what: str, servers: Any) -> None:
    """Fail like aiokafka's ``start`` when no broker answers within ``timeout``."""
    try:
        await asyncio.to_thread(client.list_topics, None, timeout)
    except KafkaException as exc:
        raise KafkaConnectionError(f"{what}: no broker at {servers} answered: {exc}") from None


# -- records ----------------------------------------------------------------------------


class Record:
    """A consumed record, shaped like aiokafka's ``ConsumerRecord``."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers or ()

    def __repr__(self) -> str:
        return f"Record({self.topic}[{self.partition}]@{self.offset})"


class RecordMetadata:
    """A produced record's ack: where it landed."""

    __slots__ = ("offset", "partition", "topic")

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset


# -- consumer ---------------------------------------------------------------------------

_SLICE = 0.05
"""Seconds of one ``consume`` call; a longer ``getmany`` takes several, so a new
assignment (the client's reply topics) or a stop is seen within this."""

_SERVE_AFTER = 0.2
"""Seconds without a getmany after which the keeper polls for waiting commits."""

_LIST_TIMEOUT = 10.0
"""Seconds a metadata, committed-offsets or watermark query may take."""


class Consumer:
    """An aiokafka-shaped consumer on ``confluent_kafka.Consumer`` (see the module
    docstring). Takes ``AIOKafkaConsumer``'s keyword arguments that ``check`` accepts."""

    def __init__(
        self,
        *,
        bootstrap_servers: str | list[str],
        group_id: str | None = None,
        enable_auto_commit: bool = False,
        **options: Any,
    ) -> None:
        self._servers = bootstrap_servers
        self._reset = str(options.get("auto_offset_reset", "latest"))
        self._timeout = float(options.get("request_timeout_ms", 40_000)) / 1000
        self._metadata_age = float(options.get("metadata_max_age_ms", 300_000)) / 1000
        self._config = {
            **config(bootstrap_servers, options),
            # No group: a reader of assigned partitions (it never commits).
            "group.id": group_id if group_id is not None else f"framework-{uuid.uuid4().hex}",
            "enable.auto.commit": enable_auto_commit,
            "enable.auto.offset.store": False,
            "partition.assignment.strategy": "roundrobin",
            "error_cb": self._on_error,
            "on_commit": self._on_commit,
            "logger": _LIBRDKAFKA,
        }
        if group_id is not None:
            self._config["statistics.interval.ms"] = 1000
            self._config["stats_cb"] = self._on_stats
        self._consumer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The one thread that touches the librdkafka consumer (see the module docstring).
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="kafka-consume")
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._busy = False  # the thread is in a call that runs queued jobs meanwhile
        self._busy_lock = threading.Lock()
        self._listener: Any = None
        self._assignment: frozenset[Any] = frozenset()
        self._starts: dict[Any, int] = {}
        self._highwater: dict[Any, int] = {}
        self._highwater_at = 0.0
        self._paused: set[Any] = set()
        self._wanted: dict[Any, int] | None = None  # assign(): applied before next consume
        self._moved: set[Any] = set()  # seeked while a consume ran: its records are stale
        self._generation = 0
        self._pattern: re.Pattern[str] | None = None
        self._topics: list[str] = []
        self._listed = 0.0
        self._coordinator = True
        self._stopped = False
        self._tps: dict[tuple[str, int], Any] = {}
        # A handler slower than max_poll_interval_ms must not cost the group membership:
        # the keeper polls (serving the group) when getmany has not for a while.
        self._max_poll = float(options.get("max_poll_interval_ms", 300_000)) / 1000
        self._polled = time.monotonic()
        self._stash: list[Any] = []  # records a keeper's poll took, for the next getmany
        self._keeper: threading.Thread | None = None
        self._rebalancing = False
        # Asynchronous commits not answered yet: (their offsets, their future).
        self._commits: deque[tuple[frozenset[tuple[str, int, int]], asyncio.Future[None]]] = deque()

    # -- the consumer's thread -------------------------------------------------------

    def _call(self, call: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``call`` on the consumer's thread: between two polls if it is consuming
        (or waiting in a rebalance callback), else next. Returns its result's future."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def job() -> None:
            try:
                result = call(*args)
            except KafkaException as exc:
                loop.call_soon_threadsafe(_fail, done, _error(exc))
            except BaseException as exc:  # handed to the awaiting coroutine
                loop.call_soon_threadsafe(_fail, done, exc)
            else:
                loop.call_soon_threadsafe(_succeed, done, result)

        with self._busy_lock:
            if self._busy:
                self._jobs.put(job)
                return done
        self._thread.submit(job)
        return done

    def _busy_run(self, call: Callable[..., Any], *args: Any) -> Any:
        """(Consumer thread.) ``call``, which runs queued jobs (``_run_jobs``) while it
        lasts; the jobs queued until its end run before it returns."""
        with self._busy_lock:
            self._busy = True
        try:
            return call(*args)
        finally:
            with self._busy_lock:
                self._busy = False
            self._run_jobs()

    def _run_jobs(self) -> None:
        jobs = self._jobs
        while not jobs.empty():
            job = jobs.get_nowait()
            if job is not None:
                job()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer = _create(confluent_kafka.Consumer, self._config)
        try:
            await self._call(self._consumer.list_topics, None, self._timeout)
        except KafkaError as exc:
            raise KafkaConnectionError(
                f"consumer: no broker at {self._servers} answered: {exc}"
            ) from None
        self._keeper = threading.Thread(target=self._keep, name="kafka-keep", daemon=True)
        self._keeper.start()

    def _keep(self) -> None:
        """(Keeper thread.) Poll when getmany has not for a third of max_poll_interval,
        or for ``_SERVE_AFTER`` while commits wait for their answers (after ``stop``
        began, or while a long batch runs)."""
        every = self._max_poll / 3
        while not self._stopped:
            time.sleep(_SLICE)
            idle = time.monotonic() - self._polled
            if idle > every or (self._commits and idle > _SERVE_AFTER):
                self._polled = time.monotonic()
                self._thread.submit(self._busy_run, self._keep_polling)

    def _keep_polling(self) -> None:
        """(Consumer thread.) Poll with every partition paused, to serve the group and
        the commits' answers without taking records (a record that was already here
        waits for the next getmany, which resumes the partitions)."""
        consumer = self._consumer
        if consumer is None:
            return
        self._pause_others(frozenset())
        found = consumer.poll(0)
        if found is not None:
            self._stash.append(found)

    async def stop(self) -> None:
        """Leave the group (the listener's revocation runs, committing what is due)."""
        consumer = self._consumer
        self._stopped = True
        if consumer is not None:
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._thread, self._busy_run, consumer.close)
            except (KafkaException, RuntimeError) as exc:
                logger.warning("Kafka consumer did not close cleanly: %s", exc)
            self._consumer = None
        commits, self._commits = self._commits, deque()
        for _, acked in commits:
            _answer(acked, ConsumerStoppedError())
        self._thread.shutdown(wait=False)

    # -- subscription and assignment (subscribe, assign: before the next getmany) ----

    def subscribe(
        self, topics: Iterable[str] = (), *, pattern: str | None = None, listener: Any = None
    ) -> None:
        self._listener = listener
        if pattern is not None:
            # librdkafka's regexes have no lookahead (ours skip replies and dead letters):
            # match topic names here, and subscribe to the list (refreshed every
            # metadata_max_age_ms, on the consumer's thread).
            self._pattern = re.compile(pattern)
            self._listed = 0.0
            return
        self._topics = list(topics)
        self._call(self._subscribe, self._topics)

    def _subscribe(self, topics: list[str]) -> None:
        """(Consumer thread.) Subscribe once librdkafka's metadata shows the topics:
        joining before would assign the ones it knows, and the rest in a second
        rebalance that starts them at ``auto_offset_reset`` (skipping what arrived)."""
        deadline = time.monotonic() + _LIST_TIMEOUT
        while time.monotonic() < deadline:
            try:
                known = self._consumer.list_topics(None, _LIST_TIMEOUT).topics
            except KafkaException:
                break
            if all(t in known and known[t].error is None and known[t].partitions for t in topics):
                break
            time.sleep(0.05)
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    def _refresh_pattern(self) -> None:
        """(Consumer thread.) Subscribe to the topics matching the pattern now."""
        assert self._pattern is not None
        self._listed = time.monotonic()
        try:
            metadata = self._consumer.list_topics(None, _LIST_TIMEOUT)
        except KafkaException as exc:
            logger.warning("Kafka topic listing failed (%s); will retry", exc)
            return
        found = sorted(t for t in metadata.topics if self._pattern.match(t))
        if found != self._topics:
            self._topics = found
            if found:
                self._subscribe(found)

    def _tp(self, topic: str, partition: int) -> Any:
        tp = self._tps.get((topic, partition))
        if tp is None:
            tp = self._tps[(topic, partition)] = TopicPartition(topic, partition)
        return tp

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """(Consumer thread.) Start each partition at its committed offset, else at the
        ``auto_offset_reset`` end, then tell the listener."""
        try:
            committed = consumer.committed(partitions, _LIST_TIMEOUT)
        except KafkaException as exc:
            logger.warning("Kafka committed offsets unknown (%s); librdkafka decides", exc)
            committed = partitions
        starts: list[Any] = []
        for part in committed:
            offset = part.offset
            if offset < 0:
                try:
                    low, high = consumer.get_watermark_offsets(
                        RdPartition(part.topic, part.partition), _LIST_TIMEOUT
                    )
                    offset = low if self._reset == "earliest" else high
                except KafkaException:
                    offset = part.offset
            starts.append(RdPartition(part.topic, part.partition, offset))
        consumer.assign(starts)
        # librdkafka keeps a partition's pause across a rebalance: one paused before
        # (by the keeper, or a full lane) would never be fetched from again.
        consumer.resume(starts)
        self._starts = {self._tp(p.topic, p.partition): p.offset for p in starts if p.offset >= 0}
        self._assignment = frozenset(self._tp(p.topic, p.partition) for p in starts)
        self._paused.clear()
        self._tell("on_partitions_assigned", set(self._assignment))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """(Consumer thread.) Let the listener stop and commit, then give them up."""
        revoked = {self._tp(p.topic, p.partition) for p in partitions}
        self._tell("on_partitions_revoked", revoked)
        # Records polled before the revocation are the next owner's to fetch again.
        self._stash = [m for m in self._stash if self._tp(m.topic(), m.partition()) not in revoked]
        self._assignment = frozenset(self._assignment - revoked)
        self._paused -= revoked
        try:
            consumer.unassign()
        except KafkaException as exc:
            logger.warning("Kafka unassign failed: %s", exc)

    def _tell(self, name: str, partitions: set[Any]) -> None:
        """(Consumer thread, in a rebalance callback.) Run a listener coroutine on the
        loop; run the jobs it queues (its commits) until it is done."""
        listener, loop = self._listener, self._loop
        if listener is None or loop is None or loop.is_closed():
            return
        jobs = self._jobs
        self._rebalancing = True
        self._give_up_commits()
        try:
            told = asyncio.run_coroutine_threadsafe(getattr(listener, name)(partitions), loop)
            told.add_done_callback(lambda _: jobs.put(_nothing))
            while not told.done():
                jobs.get()()
            told.result()
        except Exception:
            logger.exception("Kafka rebalance listener %s failed", name)
        finally:
            self._rebalancing = False

    def assign(self, partitions: Iterable[Any]) -> None:
        """Read exactly ``partitions`` (no group); ``seek`` each before reading it."""
        wanted = list(partitions)
        self._assignment = frozenset(wanted)
        self._wanted = {tp: confluent_kafka.OFFSET_END for tp in wanted}
        self._generation += 1

    def assignment(self) -> frozenset[Any]:
        return self._assignment

    async def position(self, tp: Any) -> int:
        """Where ``tp`` started when assigned (what the lanes pin), else where it is."""
        start = self._starts.get(tp)
        if start is not None:
            return start
        [part] = await self._call(self._consumer.position, [RdPartition(tp.topic, tp.partition)])
        return int(part.offset)

    def seek(self, tp: Any, offset: int) -> None:
        if self._wanted is not None and tp in self._wanted:
            self._wanted[tp] = offset
            return
        self._moved.add(tp)
        self._call(self._consumer.seek, RdPartition(tp.topic, tp.partition, offset))

    def highwater(self, tp: Any) -> int | None:
        """The end of ``tp`` as last fetched (refreshed about once a second)."""
        return self._highwater.get(tp)

    async def end_offsets(self, partitions: Iterable[Any]) -> dict[Any, int]:
        parts = [RdPartition(tp.topic, tp.partition) for tp in partitions]
        highs = await self._call(self._ends, parts)
        return {self._tp(p.topic, p.partition): high for p, high in zip(parts, highs, strict=True)}

    def _ends(self, parts: list[Any]) -> list[int]:
        return [int(self._consumer.get_watermark_offsets(p, self._timeout)[1]) for p in parts]

    def coordinator_known(self) -> bool:
        """Whether the group is up with a broker connection (librdkafka's statistics,
        every second)."""
        return self._coordinator

    # -- fetching --------------------------------------------------------------------

    async def getmany(
        self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[Any, list[Record]]:
        """Records of the assigned partitions (of ``partitions`` only, if given: the
        others are paused meanwhile), at most ``max_records``."""
        if self._stopped or self._consumer is None:
            raise ConsumerStoppedError()
        self._moved.clear()
        generation = self._generation
        # Taken here, on the loop: ``assign`` and its ``seek`` s happen together there.
        wanted, self._wanted = self._wanted, None
        loop = self._loop or asyncio.get_running_loop()
        messages = await loop.run_in_executor(
            self._thread,
            self._busy_run,
            self._consume,
            max_records or 500,
            timeout_ms / 1000,
            wanted,
            frozenset(partitions) if partitions else None,
        )
        if self._stopped:
            raise ConsumerStoppedError()
        if generation != self._generation:
            return {}  # reassigned meanwhile: read again from the positions set since
        return self._batches(messages)

    def _consume(
        self,
        count: int,
        timeout: float,
        wanted: dict[Any, int] | None,
        only: frozenset[Any] | None,
    ) -> list[Any]:
        """(Consumer thread.) Apply a new assignment (``wanted``) and pause all but
        ``only``, then wait up to ``timeout`` for records, running queued jobs."""
        consumer = self._consumer
        if consumer is None:
            return []
        if wanted is not None:
            consumer.assign([RdPartition(tp.topic, tp.partition, o) for tp, o in wanted.items()])
        self._pause_others(only)
        now = time.monotonic()
        if self._pattern is not None and now - self._listed >= self._metadata_age:
            self._refresh_pattern()
        if now - self._highwater_at >= 1.0:
            self._refresh_highwater(now)
        # consume(n, timeout) waits for all n records (or the timeout): wait for the
        # first with poll, then take what else is here without waiting.
        deadline = now + timeout
        while True:
            self._run_jobs()
            if self._stash:  # records a job's or the keeper's poll took: first, in order
                stash, self._stash = self._stash, []
                more: list[Any] = (
                    consumer.consume(count - len(stash), 0) if count > len(stash) else []
                )
                return stash + more
            left = deadline - time.monotonic()
            self._polled = time.monotonic()
            found: list[Any] = consumer.consume(count, 0)  # what is here already
            if found:
                return found
            first = consumer.poll(max(min(left, _SLICE), 0))
            if first is not None:
                rest: list[Any] = consumer.consume(count - 1, 0) if count > 1 else []
                rest.insert(0, first)
                return rest
            if left <= _SLICE or self._stopped or self._wanted is not None:
                return []

    def _pause_others(self, only: frozenset[Any] | None) -> None:
        """(Consumer thread.) Fetch only for ``only`` (``None``: every partition)."""
        wanted = self._assignment if only is None else only
        pause = [tp for tp in self._assignment if tp not in wanted and tp not in self._paused]
        resume = [tp for tp in self._paused if tp in wanted]
        if pause:
            self._consumer.pause([RdPartition(tp.topic, tp.partition) for tp in pause])
            self._paused.update(pause)
        if resume:
            self._consumer.resume([RdPartition(tp.topic, tp.partition) for tp in resume])
            self._paused.difference_update(resume)

    def _refresh_highwater(self, now: float) -> None:
        """(Consumer thread.) The partitions' ends as librdkafka last saw them."""
        self._highwater_at = now
        found = {}
        for tp in self._assignment:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    RdPartition(tp.topic, tp.partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                found[tp] = int(high)
        self._highwater = found

    def _batches(self, messages: list[Any]) -> dict[Any, list[Record]]:
        """The records by partition (in offset order), without errors and without the
        partitions seeked meanwhile."""
        out: dict[Any, list[Record]] = {}
        moved = self._moved
        last_topic: str | None = None
        last_partition = -1
        records: list[Record] = []
        append = records.append
        for m in messages:
            if m.error() is not None:
                self._fetch_error(m.error())
                continue
            topic, partition = m.topic(), m.partition()
            if partition != last_partition or topic != last_topic:
                last_topic, last_partition = topic, partition
                tp = self._tp(topic, partition)
                records = [] if tp in moved else out.setdefault(tp, [])
                append = records.append
            append(
                Record(
                    topic, partition, m.offset(), m.timestamp()[1], m.key(), m.value(), m.headers()
                )
            )
        return out

    def _fetch_error(self, err: Any) -> None:
        if err.code() != confluent_kafka.KafkaError._PARTITION_EOF:
            logger.warning("Kafka fetch error: %s", err)

    # -- commits ---------------------------------------------------------------------

    async def commit(self, offsets: Mapping[Any, int]) -> None:
        """Commit ``offsets`` and wait for the broker's answer."""
        parts = [RdPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()]
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._call(self._commit, parts, acked)
        await acked

    def _commit(self, parts: list[Any], acked: asyncio.Future[None]) -> None:
        """(Consumer thread.) In a rebalance callback a synchronous commit (librdkafka
        serves nothing else there); otherwise an asynchronous one, answered in
        ``_on_commit`` by the next poll, so a commit never holds this thread (the
        group and the statistics, which tell a lost broker, keep being served)."""
        consumer = self._consumer
        if consumer is None:
            raise ConsumerStoppedError()
        loop = self._loop
        assert loop is not None
        if self._rebalancing:
            done = consumer.commit(offsets=parts, asynchronous=False)
            failed = next((p.error for p in done or () if p.error is not None), None)
            error = None if failed is None else _error(KafkaException(failed))
            loop.call_soon_threadsafe(_answer, acked, error)
            return
        entry = (_signature(parts), acked)
        self._commits.append(entry)
        try:
            consumer.commit(offsets=parts, asynchronous=True)
        except BaseException:
            self._commits.remove(entry)
            raise

    def _on_commit(self, err: Any, partitions: list[Any]) -> None:
        """(Consumer thread, in a poll.) The answer to an asynchronous commit: the
        oldest one of these offsets (one given up on is no longer listed)."""
        if not self._commits or self._loop is None:
            return
        signature = _signature(partitions) if partitions else None
        entry = next((e for e in self._commits if signature is None or e[0] == signature), None)
        if entry is None:
            return
        self._commits.remove(entry)
        failed = err or next((p.error for p in partitions or () if p.error is not None), None)
        error = None if failed is None else _error(KafkaException(failed))
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(_answer, entry[1], error)

    def _give_up_commits(self) -> None:
        """(Consumer thread, entering a rebalance callback.) Commits still unanswered
        cannot be answered before the callback ends (no poll there), and the listener
        may wait for them (the lanes' commit lock): fail them as retriable, so their
        offsets go back to the tracker and the listener's commit takes them."""
        commits, self._commits = self._commits, deque()
        loop = self._loop
        for _, acked in commits:
            error = KafkaError("a rebalance began before the commit was answered")
            error.retriable = True
            if loop is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_answer, acked, error)

    # -- librdkafka callbacks (consumer thread) --------------------------------------

    def _on_error(self, err: Any) -> None:
        logger.warning("Kafka (librdkafka): %s", err)

    def _on_stats(self, raw: str) -> None:
        # librdkafka keeps its group "up" while every broker is away: connected means
        # the group is up and a broker connection too.
        try:
            stats = json.loads(raw)
        except ValueError:
            return
        brokers = stats.get("brokers", {}).values()
        self._coordinator = stats.get("cgrp", {}).get("state") == "up" and any(
            b.get("state") == "UP" for b in brokers
        )


def _nothing() -> None:
    """Wakes a rebalance callback waiting for jobs: its listener is done."""


# -- producer ---------------------------------------------------------------------------


class Producer:
    """An aiokafka-shaped producer on ``confluent_kafka.Producer``: ``send`` returns the
    ack's future, settled by a poller thread."""

    def __init__(self, *, bootstrap_servers: str | list[str], **options: Any) -> None:
        self._servers = bootstrap_servers
        self._timeout = float(options.get("request_timeout_ms", 40_000)) / 1000
        self._config = {
            **config(bootstrap_servers, options),
            "error_cb": self._on_error,
            "logger": _LIBRDKAFKA,
        }
        self._producer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._acked: list[tuple[asyncio.Future[Any], Any, Any]] = []  # poller thread only

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = _create(confluent_kafka.Producer, self._config)
        await _probe(self._producer, self._timeout, "producer", self._servers)
        self._running = True
        self._thread = threading.Thread(target=self._poll, name="kafka-produce", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Deliver what is queued (up to the request timeout), then stop polling."""
        self._running = False
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)
        self._producer = None  # freed now, not whenever the object is collected

    def _poll(self) -> None:
        producer, loop = self._producer, self._loop
        assert loop is not None
        while self._running:
            producer.poll(_SLICE)
            self._hand_over(loop)
        producer.flush(self._timeout)
        self._hand_over(loop)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._acked:
            acked, self._acked = self._acked, []
            # A closed loop: nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, acked)

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Any = None,
    ) -> asyncio.Future[Any]:
        """Queue a record; returns the future of its broker ack."""
        if self._producer is None or not self._running:
            raise KafkaError("the producer is not running")
        loop = self._loop or asyncio.get_running_loop()
        ack: asyncio.Future[Any] = loop.create_future()

        def delivered(err: Any, msg: Any) -> None:
            # On the poller thread (poll serves it), into the list it hands over next.
            self._acked.append((ack, err, msg))

        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    -1 if partition is None else partition,
                    on_delivery=delivered,
                    timestamp=timestamp_ms or 0,
                    headers=list(headers) if headers else None,
                )
                return ack
            except BufferError:
                await asyncio.sleep(0.005)  # librdkafka's queue is full: let it drain
            except KafkaException as exc:
                raise _error(exc) from None

    async def send_and_wait(self, topic: str, value: bytes | None = None, **kwargs: Any) -> Any:
        return await (await self.send(topic, value, **kwargs))

    async def partitions_for(self, topic: str) -> set[int]:
        try:
            metadata = await asyncio.to_thread(self._producer.list_topics, topic, self._timeout)
        except KafkaException as exc:
            raise _error(exc) from None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise KafkaError(f"topic {topic!r} is not available: {found and found.error}")
        return set(found.partitions)

    def _on_error(self, err: Any) -> None:
        logger.warning("Kafka (librdkafka): %s", err)


def _create(cls: Callable[[dict[str, Any]], Any], settings: dict[str, Any]) -> Any:
    """A librdkafka client; a setting it refuses is a ``ConfigurationError``."""
    try:
        return cls(settings)
    except KafkaException as exc:
        raise ConfigurationError(f"librdkafka refused the Kafka settings: {exc}") from None


def _signature(parts: list[Any]) -> frozenset[tuple[str, int, int]]:
    return frozenset((p.topic, p.partition, p.offset) for p in parts)


def _answer(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return  # given up on (the commit timeout)
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _settle(acked: list[tuple[asyncio.Future[Any], Any, Any]]) -> None:
    """(Event loop.) Resolve the acks of one poll."""
    for ack, err, msg in acked:
        if ack.done():
            continue
        if err is not None:
            ack.set_exception(_error(KafkaException(err)))
        else:
            ack.set_result(RecordMetadata(msg.topic(), msg.partition(), msg.offset()))

"""``KafkaTransport``: serve the app's handlers from Kafka topics, at least once.

How records flow (see docs/transports/kafka.md for the user-facing story):

- One consumer group subscribes to every pattern served on "kafka" (topic = pattern).
  One fetch task calls ``getmany`` and hands each partition's batch to that partition's
  *lane*: a task walks the batch in offset order and awaits handlers inline, so there is
  no task or queue hop per record. Partitions run concurrently, at most
  ``max_concurrency`` batches at once; a partition with ``max_pending_batches`` batches
  waiting is not fetched from until its lane catches up (its next records wait in
  aiokafka's buffer), so memory stays bounded.
- After a batch (or part of one, when stopping) the offset after its last finished
  record becomes the partition's watermark; a committer task commits watermarks every
  ``commit_every`` records or ``commit_interval`` seconds, and the rebalance listener
  commits revoked partitions before giving them up.
- An event handler that raises is retried with backoff, then the record goes to the
  dead-letter topic with Spring/NestJS ``kafka_dlt-*`` headers, then the partition moves
  on. A record that does not decode or validate goes to the dead-letter topic at once.
- A request (``kafka_correlationId`` + ``kafka_replyTopic``) gets its reply or error
  reply as NestJS would send it; a stream result keeps replying from a background task
  (at most ``max_streams``) while the partition moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
)
from aiokafka.errors import (  # type: ignore[import-untyped]
    CommitFailedError,
    ConsumerStoppedError,
    KafkaError,
)

from framework.exceptions import TransportError
from framework.messaging.errors import error_payload
from framework.messaging.patterns import compile_wildcard, is_wildcard
from framework.messaging.router import MessageHandler, Router
from framework.transports.base import ClientProxy, Transport
from framework.transports.kafka.admin import TopicCreator, split_options, stop_quietly
from framework.transports.kafka.context import KafkaContext
from framework.transports.kafka.offsets import OffsetTracker
from framework.transports.kafka.retry import RetryPolicy, is_poison
from framework.transports.kafka.wire import (
    NO_HANDLER,
    RequestInfo,
    dead_letter_headers,
    encode_value,
    payload,
    reply_headers,
    request_info,
)

logger = logging.getLogger("framework.kafka")

NAME = "kafka"
RESERVED_SUFFIXES = (".reply", ".dlq")
"""Wildcard subscriptions never match topics ending with these (replies, dead letters)."""

# While some partitions are full, getmany waits at most this long for the others, so a
# full partition that made room is fetched again soon (a pending getmany cannot be told
# about it, and cancelling one upsets aiokafka's poll-interval bookkeeping).
_BUSY_POLL_MS = 5

_JSON_FIRST = frozenset(b"{[")


def subscription_regex(patterns: Iterable[str]) -> str:
    """One regex for a pattern subscription: exact topics, or wildcard matches that are
    not reply, dead-letter or internal (``__``) topics."""
    exact = sorted(p for p in patterns if not is_wildcard(p))
    wild = sorted(p for p in patterns if is_wildcard(p))
    branches = [re.escape(p) for p in exact]
    if wild:
        suffixes = "|".join(re.escape(s) for s in RESERVED_SUFFIXES)
        joined = "|".join(compile_wildcard(p).pattern.removesuffix(r"\Z") for p in wild)
        branches.append(rf"(?!__)(?!.*(?:{suffixes})$)(?:{joined})")
    return "^(?:" + "|".join(branches) + ")$"


def _raw_value(value: bytes | None) -> Any:
    return value


class _Lane:
    """One assigned partition: its running batch task and the batches waiting for it."""

    __slots__ = ("acks", "backlog", "closed", "fetched", "open", "task", "tp")

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self.task: asyncio.Future[None] | None = None
        self.backlog: deque[list[Any]] = deque()
        self.open = True
        self.fetched = False
        self.closed = asyncio.Event()
        self.acks: list[asyncio.Future[Any]] = []

    def close(self) -> None:
        """Stop after the record in hand; waiting batches are dropped (redelivered)."""
        self.open = False
        self.backlog.clear()
        self.closed.set()

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; False if the lane closed meanwhile."""
        if not self.open:
            return False
        try:
            async with asyncio.timeout(seconds):
                await self.closed.wait()
        except TimeoutError:
            return True
        return False


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, transport: KafkaTransport) -> None:
        self.transport = transport

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.transport._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.transport._on_assigned(set(assigned))


class KafkaTransport(Transport):
    """Serve message and event handlers from Kafka, NestJS-compatible on the wire.

    Args:
        bootstrap_servers: the cluster, ``"host:port"`` or a list of them.
        group_id: the consumer group every instance of this service joins.
        topics: topics (or wildcard patterns) to consume besides the handlers' patterns.
            A request arriving on one without a handler gets NestJS's "no matching
            message handler" error reply instead of timing out; events are skipped.
        max_batch_size: records taken from one ``getmany`` call, at most.
        max_pending_batches: fetched batches waiting per partition before the partition
            is not fetched from; in-flight records are bounded by
            ``partitions * (1 + max_pending_batches) * max_batch_size``.
        max_concurrency: partition batches handled at the same time.
        poll_timeout: seconds one ``getmany`` waits for records.
        commit_every: handled records after which offsets are committed.
        commit_interval: seconds between commits of pending progress.
        commit_timeout: seconds one commit may take before it is retried later.
        max_retries: default retries of a failing event handler (decorator extra
            ``max_retries`` overrides it per handler).
        retry_backoff: seconds before the first retry; doubles per retry (extra
            ``retry_backoff``).
        retry_backoff_max: ceiling of the wait between retries, in seconds (extra
            ``retry_backoff_max``).
        dlq_suffix: the dead-letter topic is ``<topic><dlq_suffix>`` unless a handler
            names one with the extra ``dlq="topic"`` (or ``dlq=False`` to drop).
        max_streams: streaming replies running at once; more wait (and hold their
            partition) until one ends.
        stream_end_wait: seconds a stream item is held back waiting for the next one, so
            the last item can carry the end-of-stream mark (NestJS clients otherwise see
            a trailing ``null``).
        shutdown_timeout: seconds ``stop`` (and a revocation) waits for in-flight
            handlers and streams before cancelling them.
        start_timeout: seconds ``start`` waits for the group to assign partitions.
        create_topics: create missing topics for the served patterns and dead letters.
        topic_partitions: partitions of created topics (``None``: the broker default).
        replication_factor: replicas of created topics (``None``: the broker default).
        consumer_options: extra ``AIOKafkaConsumer`` options.
        producer_options: extra ``AIOKafkaProducer`` options (replies, dead letters).
        **options: aiokafka options, routed to the consumer, the producer and the admin
            client by name (``auto_offset_reset="earliest"``, ``client_id``,
            ``security_protocol``...).
    """

    name = NAME

    on_retry: Callable[[MessageHandler], None] | None = None
    """Called before each retry of a failed handler (set by metrics)."""
    on_dead_letter: Callable[[MessageHandler], None] | None = None
    """Called when a record is given up: dead-lettered, or dropped with ``dlq=False``."""

    def __init__(
        self,
        *,
        bootstrap_servers: str | list[str] = "127.0.0.1:9092",
        group_id: str = "framework",
        topics: Iterable[str] = (),
        max_batch_size: int = 500,
        max_pending_batches: int = 2,
        max_concurrency: int = 64,
        poll_timeout: float = 0.5,
        commit_every: int = 1000,
        commit_interval: float = 1.0,
        commit_timeout: float = 10.0,
        max_retries: int = 3,
        retry_backoff: float = 0.2,
        retry_backoff_max: float = 5.0,
        dlq_suffix: str = ".dlq",
        max_streams: int = 1000,
        stream_end_wait: float = 0.01,
        shutdown_timeout: float = 30.0,
        start_timeout: float = 30.0,
        create_topics: bool = True,
        topic_partitions: int | None = None,
        replication_factor: int | None = None,
        consumer_options: dict[str, Any] | None = None,
        producer_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        for label, number in (
            ("max_batch_size", max_batch_size),
            ("max_pending_batches", max_pending_batches),
            ("max_concurrency", max_concurrency),
            ("max_streams", max_streams),
        ):
            if number < 1:
                raise ValueError(f"{label} must be at least 1")
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.topics = list(topics)
        self.max_batch_size = max_batch_size
        self.max_pending_batches = max_pending_batches
        self.max_concurrency = max_concurrency
        self.poll_timeout = poll_timeout
        self.commit_every = commit_every
        self.commit_interval = commit_interval
        self.commit_timeout = commit_timeout
        self.policy = RetryPolicy(max_retries, retry_backoff, retry_backoff_max)
        self.dlq_suffix = dlq_suffix
        self.max_streams = max_streams
        self.stream_end_wait = stream_end_wait
        self.shutdown_timeout = shutdown_timeout
        self.start_timeout = start_timeout
        self.create_topics = create_topics
        self.topic_partitions = topic_partitions
        self.replication_factor = replication_factor
        consumer, producer, admin = split_options(options, "KafkaTransport")
        self._consumer_options = {
            "auto_offset_reset": "latest",
            **consumer,
            **(consumer_options or {}),
        }
        self._producer_options = {
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 0,
            **producer,
            **(producer_options or {}),
        }
        self._admin_options = admin
        self._options = options
        self._reset()

    def _reset(self) -> None:
        self._consumer: Any = None
        self._producer: Any = None
        self._topics: TopicCreator | None = None
        self._router: Router | None = None
        self._lanes: dict[Any, _Lane] = {}
        self._tracker: OffsetTracker[Any] = OffsetTracker(
            commit_every=self.commit_every, commit_interval=self.commit_interval
        )
        self._policies: dict[MessageHandler, RetryPolicy] = {}
        self._decoders: dict[MessageHandler, Callable[[bytes | None], Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: set[asyncio.Task[None]] = set()
        self._consume_task: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._commit_wanted = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._serving = asyncio.Event()
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._full: set[Any] = set()
        self._single = False
        self._room = asyncio.Event()
        self._stream_slots = asyncio.Semaphore(self.max_streams)
        self._running = False

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, join the group, and return once partitions are assigned.

        Raises:
            TransportError: the broker is unreachable, topics cannot be created, or the
                group did not assign partitions within ``start_timeout``.
        """
        self._reset()
        router = self._router = self.host.router
        handlers = [h for h in router.handlers if h.serves(NAME)]
        for h in handlers:
            self._policies[h] = self.policy.with_extras(h.extras, h.name)
            self._decoders[h] = _raw_value if h.signature.payload_type is bytes else payload
        patterns = sorted(router.patterns(NAME) | set(self.topics))
        self._topics = TopicCreator(
            self.bootstrap_servers,
            partitions=self.topic_partitions,
            replication_factor=self.replication_factor,
            timeout=self.start_timeout,
            options=self._admin_options,
        )
        try:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers, **self._producer_options
            )
            await self._producer.start()
            exact = [p for p in patterns if not is_wildcard(p)]
            if self.create_topics and exact:
                await self._topics.ensure(exact)
            # Running before the first fetch: the fetch loop exits when this is false.
            self._running = True
            if patterns:
                await self._start_consumer(patterns)
            else:
                self._serving.set()
        except BaseException as exc:
            self._running = False
            await self._cancel_tasks()
            await self._close_clients()
            if isinstance(exc, KafkaError | OSError):
                raise TransportError(
                    f"Kafka transport could not start on {self.bootstrap_servers}: {exc!r}"
                ) from exc
            raise

    async def _start_consumer(self, patterns: Sequence[str]) -> None:
        options = dict(self._consumer_options)
        if any(is_wildcard(p) for p in patterns):
            # New topics matching a wildcard are found by metadata refreshes: look every
            # 30 s rather than aiokafka's 5 minutes.
            options.setdefault("metadata_max_age_ms", 30_000)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            **options,
        )
        await self._consumer.start()
        listener = _Listener(self)
        if any(is_wildcard(p) for p in patterns):
            self._consumer.subscribe(pattern=subscription_regex(patterns), listener=listener)
        else:
            self._consumer.subscribe(topics=list(patterns), listener=listener)
        self._consume_task = asyncio.create_task(self._consume(), name="kafka-consume")
        self._commit_task = asyncio.create_task(self._committer(), name="kafka-commit")
        try:
            async with asyncio.timeout(self.start_timeout):
                await self._serving.wait()
        except TimeoutError:
            raise TransportError(
                f"Kafka group {self.group_id!r} assigned no partitions within "
                f"{self.start_timeout:g} s; is the broker at {self.bootstrap_servers} "
                "healthy?"
            ) from None

    async def stop(self) -> None:
        """Stop fetching, finish in-flight records and streams, commit, leave the group."""
        if not self._running and self._producer is None:
            return
        self._running = False
        lanes = list(self._lanes.values())
        for lane in lanes:
            lane.close()
        # Lanes stop after the record in hand (the fetch loop too, if it handles one).
        await self._finish([lane.task for lane in lanes if lane.task is not None])
        if self._consume_task is not None:
            self._consume_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consume_task
        await self._finish(list(self._streams))
        await self._finish(list(self._tasks), limit=0)
        if self._commit_task is not None:
            self._commit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._commit_task
        if self._consumer is not None:
            await self._commit()
        self._lanes.clear()
        await self._close_clients()

    async def _cancel_tasks(self) -> None:
        tasks = [self._consume_task, self._commit_task, *self._tasks]
        for task in tasks:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)

    async def _close_clients(self) -> None:
        consumer, producer, topics = self._consumer, self._producer, self._topics
        self._consumer = self._producer = self._topics = None
        await stop_quietly("KafkaTransport", consumer, producer, timeout=self.shutdown_timeout)
        if topics is not None:
            with contextlib.suppress(Exception):
                await topics.close()

    async def _finish(self, tasks: list[asyncio.Future[Any]], limit: float | None = None) -> None:
        """Wait for ``tasks`` up to ``limit`` (the shutdown timeout), then cancel the rest."""
        if not tasks:
            return
        limit = self.shutdown_timeout if limit is None else limit
        _, pending = await asyncio.wait(tasks, timeout=limit) if limit > 0 else ((), tasks)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("Cancelled %d Kafka handler task(s) still running", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def ready(self) -> bool:
        if not self._running or not self._serving.is_set():
            return False
        task = self._consume_task
        return task is None or not task.done()

    @property
    def alive(self) -> bool:
        """False when the fetch or commit loop died while the transport runs."""
        if not self._running:
            return True
        tasks = (self._consume_task, self._commit_task)
        return all(task is None or not task.done() for task in tasks)

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet handled per assigned partition, ``{(topic, partition): n}``:
        the high watermark seen by the last fetch minus the offset after the last
        handled record. Partitions not fetched from yet are left out."""
        consumer = self._consumer
        if consumer is None:
            return {}
        found = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            done = self._tracker.watermark(tp)
            if high is not None and done is not None:
                found[(tp.topic, tp.partition)] = max(high - done, 0)
        return found

    def create_client(self) -> ClientProxy:
        from framework.transports.kafka.client import KafkaClient

        return KafkaClient(bootstrap_servers=self.bootstrap_servers, **self._options)

    # -- group membership ------------------------------------------------------------

    def _on_assigned(self, assigned: set[Any]) -> None:
        self._single = len(assigned) == 1
        for tp in assigned:
            if tp not in self._lanes:
                self._lanes[tp] = _Lane(tp)
        self._spawn(self._seed(assigned))

    async def _seed(self, assigned: set[Any]) -> None:
        """Pin each new partition's starting position (committed with the next commit),
        so a later owner never skips records this member was about to fetch (with
        ``auto_offset_reset="latest"``, a partition without a committed offset would
        otherwise start wherever its end is when the next owner looks)."""
        consumer = self._consumer
        try:
            async with asyncio.timeout(self.start_timeout):
                for tp in assigned:
                    with contextlib.suppress(KafkaError):
                        position = await consumer.position(tp)
                        lane = self._lanes.get(tp)
                        # Once records were fetched, the position is past unfinished
                        # ones: the first batch pinned the start instead.
                        if lane is not None and not lane.fetched:
                            self._tracker.seed(tp, position)
        except TimeoutError:
            logger.warning("Kafka positions of %s not known within the start timeout", assigned)
        self._serving.set()

    async def _on_revoked(self, revoked: set[Any]) -> None:
        self._single = False
        lanes = [self._lanes.pop(tp) for tp in revoked if tp in self._lanes]
        for lane in lanes:
            lane.close()
        self._full.difference_update(revoked)
        self._room.set()
        await self._finish([lane.task for lane in lanes if lane.task is not None])
        if revoked:
            await self._commit(revoked)
            self._tracker.forget(revoked)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- fetching --------------------------------------------------------------------

    async def _consume(self) -> None:
        consumer = self._consumer
        lanes = self._lanes
        full = self._full
        poll_ms = int(self.poll_timeout * 1000)
        busy_poll_ms = min(poll_ms, _BUSY_POLL_MS)
        failures = 0
        while True:
            try:
                if full:
                    # Fetch only for partitions with room; the others' records stay in
                    # aiokafka's buffer (one fetch response per partition at most).
                    ready = [tp for tp in consumer.assignment() if tp not in full]
                    if not ready:
                        self._room.clear()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self.poll_timeout):
                                await self._room.wait()
                        continue
                    batches = await consumer.getmany(
                        *ready, timeout_ms=busy_poll_ms, max_records=self.max_batch_size
                    )
                else:
                    batches = await consumer.getmany(
                        timeout_ms=poll_ms, max_records=self.max_batch_size
                    )
                failures = 0
            except ConsumerStoppedError:
                return
            except Exception as exc:
                # Never let the consume loop die: back off and fetch again.
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                logger.error("Kafka fetch failed (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            if not self._running:
                return
            for tp, records in batches.items():
                lane = lanes.get(tp)
                if lane is None:
                    lane = lanes[tp] = _Lane(tp)
                if not lane.fetched:
                    # Pin where this member started, so that if it loses the partition
                    # before finishing anything, the next owner starts here too.
                    lane.fetched = True
                    self._tracker.seed(tp, records[0].offset)
                if lane.task is None and self._single:
                    # One partition assigned: nothing could run beside it, so handle the
                    # batch right here and save a task hop per batch.
                    await self._inline(lane, records)
                elif lane.task is None:
                    lane.task = asyncio.create_task(self._drain(lane, records))
                else:
                    lane.backlog.append(records)
                    if len(lane.backlog) >= self.max_pending_batches:
                        full.add(tp)

    async def _inline(self, lane: _Lane, records: list[Any]) -> None:
        # A future stands for the batch, so revocation and stop can wait for it.
        lane.task = done = asyncio.get_running_loop().create_future()
        try:
            await self._handle_batch(lane, records)
        finally:
            lane.task = None
            if not done.done():
                done.set_result(None)

    async def _drain(self, lane: _Lane, records: list[Any]) -> None:
        """Handle ``records`` and every batch queued behind them, in order."""
        try:
            while True:
                async with self._slots:
                    await self._handle_batch(lane, records)
                if not lane.open or not lane.backlog:
                    return
                records = lane.backlog.popleft()
                if lane.tp in self._full:
                    self._full.discard(lane.tp)
                    self._room.set()
        finally:
            lane.task = None

    # -- handling --------------------------------------------------------------------

    async def _handle_batch(self, lane: _Lane, records: list[Any]) -> None:
        tp = lane.tp
        router = self._router
        assert router is not None
        events = router.find_events(tp.topic, NAME)
        finished = 0  # records[:finished] are done
        try:
            single = events[0] if len(events) == 1 else None
            if single is not None:
                # The hot path: one handler, records without headers. JSON values go to
                # the validator as they are; a context is built only for a handler that
                # asks for one.
                call = single.call
                decode = self._decoders.get(single, payload)
                wants_context = single.needs_context
                for record in records:
                    if record.headers or not lane.open:
                        break
                    value = record.value
                    ctx = KafkaContext(record) if wants_context else None
                    try:
                        await call(
                            value if value and value[0] in _JSON_FIRST else decode(value), ctx
                        )
                    except Exception as exc:
                        if not await self._recover(lane, record, single, exc, ctx):
                            return
                    finished += 1
            # Everything else (requests, headers, contexts, several handlers).
            for record in records[finished:]:
                if not lane.open or not await self._process(lane, record, events):
                    return
                finished += 1
        except Exception:
            # A bug of ours, not a handler failure: replay from the unfinished record
            # rather than let later commits skip it.
            logger.exception("Kafka lane %s failed; replaying its unfinished records", tp)
            lane.backlog.clear()
            if lane.open:
                with contextlib.suppress(KafkaError):
                    self._consumer.seek(tp, records[finished].offset)
        finally:
            if lane.acks:
                await self._settle(lane)
            if finished and self._tracker.done(tp, records[finished - 1].offset + 1, finished):
                self._commit_wanted.set()

    async def _process(self, lane: _Lane, record: Any, events: tuple[MessageHandler, ...]) -> bool:
        """Any record: requests, several handlers, contexts. False if interrupted."""
        info = request_info(record.headers) if record.headers else None
        if info is not None:
            router = self._router
            assert router is not None
            handler = router.find_message(record.topic, NAME)
            if handler is not None:
                await self._serve_request(lane, record, handler, info)
                return True
            if not events:
                await self._reply(lane, info, None, error=NO_HANDLER)
                return True
        if not events:
            logger.warning("No Kafka handler for topic %r; record skipped", record.topic)
            return True
        ctx = KafkaContext(record) if any(h.needs_context for h in events) else None
        for handler in events:
            try:
                await handler.call(self._decoders.get(handler, payload)(record.value), ctx)
            except Exception as exc:
                if not await self._recover(lane, record, handler, exc, ctx):
                    return False
        return True

    async def _recover(
        self,
        lane: _Lane,
        record: Any,
        handler: MessageHandler,
        exc: Exception,
        ctx: KafkaContext | None,
    ) -> bool:
        """Retry a failed handler with backoff, then dead-letter the record.

        Returns:
            False if the lane closed first (the record stays unfinished).
        """
        policy = self._policies.get(handler, self.policy)
        attempts = 1
        if not is_poison(exc):
            decode = self._decoders.get(handler, payload)
            if ctx is None and handler.needs_context:
                ctx = KafkaContext(record)
            while attempts <= policy.max_retries:
                delay = policy.delay(attempts)
                logger.warning(
                    "%s failed on %s[%d]@%d (attempt %d of %d): %r; retrying in %.2f s",
                    handler.name,
                    record.topic,
                    record.partition,
                    record.offset,
                    attempts,
                    policy.max_retries + 1,
                    exc,
                    delay,
                )
                if not await lane.sleep(delay):
                    return False
                attempts += 1
                if self.on_retry is not None:
                    self.on_retry(handler)
                try:
                    await handler.call(decode(record.value), ctx)
                    return True
                except Exception as again:
                    exc = again
                    if is_poison(again):
                        break
        return await self._dead_letter(lane, record, handler, exc, attempts, policy)

    async def _dead_letter(
        self,
        lane: _Lane,
        record: Any,
        handler: MessageHandler,
        exc: Exception,
        attempts: int,
        policy: RetryPolicy,
    ) -> bool:
        topic = policy.dead_letter_topic(record.topic, self.dlq_suffix)
        logger.error(
            "%s gave up on %s[%d]@%d after %d attempt(s): %r; %s",
            handler.name,
            record.topic,
            record.partition,
            record.offset,
            attempts,
            exc,
            f"sending it to {topic!r}" if topic else "record dropped (dlq=False)",
        )
        if self.on_dead_letter is not None:
            self.on_dead_letter(handler)
        if topic is None:
            return True
        headers = dead_letter_headers(
            record.headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            error=exc,
            attempts=attempts,
            handler=handler.name,
        )
        delay = max(policy.retry_backoff, 0.05)
        while True:
            try:
                if self.create_topics and self._topics is not None:
                    with contextlib.suppress(TransportError):
                        await self._topics.ensure([topic])
                # aiokafka refuses a record without key and value; Kafka does not.
                key = b"" if record.key is None and record.value is None else record.key
                ack = await self._producer.send(topic, record.value, key=key, headers=headers)
                await ack
                return True
            except KafkaError as err:
                if not err.retriable:
                    logger.error("Cannot dead-letter %s@%d: %r; dropped", topic, record.offset, err)
                    return True
                logger.warning("Dead-lettering to %s failed (%r); retrying", topic, err)
            if not await lane.sleep(delay):
                return False
            delay = min(delay * 2, max(policy.retry_backoff_max, delay))

    # -- requests and replies --------------------------------------------------------

    async def _serve_request(
        self, lane: _Lane, record: Any, handler: MessageHandler, info: RequestInfo
    ) -> None:
        ctx = KafkaContext(record) if handler.needs_context else None
        try:
            result = await handler.call(self._decoders.get(handler, payload)(record.value), ctx)
            if hasattr(result, "__aiter__"):
                # Streams may run for long: keep replying in the background, so the
                # partition moves on (as NestJS does after the first item).
                await self._stream_slots.acquire()
                task = asyncio.create_task(self._stream(result, info, handler))
                self._streams.add(task)
                task.add_done_callback(self._streams.discard)
                return
            value = encode_value(result)
        except Exception as exc:
            await self._reply(lane, info, None, error=error_payload(exc, where=handler.name))
            return
        await self._reply(lane, info, value, disposed=True)

    async def _reply(
        self,
        lane: _Lane | None,
        info: RequestInfo,
        value: bytes | None,
        *,
        disposed: bool = True,
        error: Any = None,
        no_value: bool = False,
    ) -> asyncio.Future[Any] | None:
        """Queue one reply record; its broker ack is awaited with the lane's batch."""
        headers = reply_headers(
            info.correlation_id,
            disposed=disposed or error is not None,
            error=error,
            no_value=no_value,
        )
        try:
            # A null value needs a key for aiokafka: the correlation id (clients ignore it).
            key = None if value is not None else info.correlation_id.encode()
            ack: asyncio.Future[Any] = await self._producer.send(
                info.reply_topic, value, key=key, partition=info.reply_partition, headers=headers
            )
        except Exception as exc:
            logger.error("Reply to %s failed: %r", info.reply_topic, exc)
            return None
        if lane is not None:
            lane.acks.append(ack)
        return ack

    async def _settle(self, lane: _Lane) -> None:
        acks, lane.acks = lane.acks, []
        for result in await asyncio.gather(*acks, return_exceptions=True):
            if isinstance(result, BaseException):
                logger.error("A Kafka reply was not delivered: %r", result)

    async def _stream(
        self, iterator: AsyncIterator[Any], info: RequestInfo, handler: MessageHandler
    ) -> None:
        acks: list[asyncio.Future[Any] | None] = []

        async def send(value: Any, *, disposed: bool, no_value: bool = False) -> None:
            data = None if no_value else encode_value(value)
            acks.append(await self._reply(None, info, data, disposed=disposed, no_value=no_value))

        try:
            await self._run_stream(iterator, send)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                error = {"status": "error", "message": "The service is shutting down"}
                await self._reply(None, info, None, error=error)
            raise
        except Exception as exc:
            await self._reply(None, info, None, error=error_payload(exc, where=handler.name))
        finally:
            self._stream_slots.release()
            close = getattr(iterator, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
            pending = [a for a in acks if a is not None]
            for result in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(result, BaseException):
                    logger.error("A Kafka stream reply was not delivered: %r", result)

    async def _run_stream(self, iterator: AsyncIterator[Any], send: Any) -> None:
        """Send every item; the last one carries is-disposed when it comes quickly."""

        async def next_item() -> Any:
            return await anext(iterator)

        try:
            item = await next_item()
        except StopAsyncIteration:
            await send(None, disposed=True, no_value=True)
            return
        while True:
            upcoming = asyncio.ensure_future(next_item())
            sent = False
            try:
                done, _ = await asyncio.wait({upcoming}, timeout=self.stream_end_wait)
                if not done:
                    # A live stream: do not hold its item back any longer.
                    await send(item, disposed=False)
                    sent = True
                try:
                    following = await upcoming
                except StopAsyncIteration:
                    if sent:
                        await send(None, disposed=True, no_value=True)
                    else:
                        await send(item, disposed=True)
                    return
            except BaseException:
                upcoming.cancel()
                if not sent:
                    with contextlib.suppress(Exception):
                        await send(item, disposed=False)
                raise
            if not sent:
                await send(item, disposed=False)
            item = following

    # -- commits ---------------------------------------------------------------------

    async def _committer(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.commit_interval):
                    await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit()

    async def _commit(self, partitions: set[Any] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        async with self._commit_lock:
            now = asyncio.get_running_loop().time()
            offsets = self._tracker.take(now, partitions)
            assigned = consumer.assignment()
            offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
            if not offsets:
                return
            try:
                async with asyncio.timeout(self.commit_timeout):
                    await consumer.commit(offsets)
            except CommitFailedError as exc:
                logger.warning(
                    "Kafka commit refused after a rebalance (%s); the new owner "
                    "may see some records again",
                    exc,
                )
            except (KafkaError, TimeoutError) as exc:
                self._tracker.restore(offsets)
                logger.warning("Kafka commit failed (%r); will retry", exc)

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
- An event handler that raises is retried with jittered backoff, then the record goes to
  the dead-letter topic with Spring/NestJS ``kafka_dlt-*`` headers, then the partition moves
  on. A record that does not decode or validate goes to the dead-letter topic at once.
- A request (``kafka_correlationId`` + ``kafka_replyTopic``) gets its reply or error
  reply as NestJS would send it; a stream result keeps replying from a background task
  (at most ``max_streams``) while the partition moves on.

Where the code is: this module holds the public surface, start and stop, and builds
the objects that do the work, each owning its state and given only what it needs:
``Lanes`` (``_lanes.py``: partition lanes, their offset tracker, commits, rebalances),
``Records`` (``_consume.py``: the one path of every record through the ``Dispatcher``,
plus the fetch loop feeding the lanes), ``Recovery`` (``_recovery.py``: retries with
backoff, dead letters) and ``Replier`` (``_replies.py``: reply records and streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from framework.exceptions import ConfigurationError, TransportError
from framework.messaging._patterns import compile_wildcard, is_wildcard
from framework.messaging.dispatch import Dispatcher, Inbound
from framework.messaging.router import MessageHandler
from framework.transports.base import ClientProxy, Transport
from framework.transports.kafka._admin import (
    TopicCreator,
    cancel_and_wait,
    split_options,
    stop_quietly,
)
from framework.transports.kafka._consume import NAME, Records, fetch
from framework.transports.kafka._engines import Engine, EngineName, engine
from framework.transports.kafka._lanes import Lanes
from framework.transports.kafka._produce import Outputs, Producing, takes_kafka_context
from framework.transports.kafka._recovery import Recovery
from framework.transports.kafka._replies import Replier
from framework.transports.kafka._retry import RetryPolicy
from framework.transports.kafka._state import PartitionState
from framework.transports.kafka._supervise import OnFailure, Supervisor, coordinator_known
from framework.transports.kafka._tables import KafkaTable
from framework.transports.kafka._transactions import Transactions
from framework.transports.kafka._windows import (
    HoppingWindow,
    Reducer,
    SessionWindow,
    TumblingWindow,
    Window,
    reducer_of,
)
from framework.transports.kafka.context import KafkaContext
from framework.transports.kafka.security import KafkaSecurity, connect_error, start_within

logger = logging.getLogger("framework.kafka")

_DIAGNOSE_TIMEOUT = 10.0
"""Seconds the extra connection that finds why a start failed may take."""

RESERVED_SUFFIXES = (".reply", ".dlq")
"""Wildcard subscriptions never match topics ending with these (replies, dead letters)."""


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


def _context(inbound: Inbound) -> KafkaContext:
    return KafkaContext(inbound.raw)


_WINDOWS = (TumblingWindow, HoppingWindow, SessionWindow)


def _window_spec(handler: MessageHandler) -> tuple[Window, Reducer]:
    """A window handler's window and reducer (decorator extras ``window=``,
    ``aggregate=``), checked at start."""
    extras, owner = handler.extras, handler.name
    window = extras["window"]
    if not isinstance(window, _WINDOWS):
        raise ConfigurationError(
            f"{owner}: window= takes a TumblingWindow, HoppingWindow or SessionWindow, "
            f"not {window!r}"
        )
    if "emits" not in extras:
        raise ConfigurationError(
            f"{owner}: a window handler needs emits='topic' (where closed windows go)"
        )
    return window, reducer_of(extras.get("aggregate", "count"), owner)


FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch with nothing new (aiokafka's default is 500 ms).

aiokafka keeps one fetch in flight per broker and sends it only for partitions with
nothing buffered. When the only such partitions are caught up, the broker holds that
fetch this long while every other partition of the broker runs dry behind it: catching
up on 4 partitions of uneven length, a 500 ms hold cost a third to half the wall time.
Caught-up partitions then poll 10 times a second instead of twice; a new record still
comes back at once."""


def _engine(name: str, *, exactly_once: bool, tables: bool) -> Engine:
    """The transport's engine; the confluent one has no transactions or state stores."""
    found = engine(name, "KafkaTransport")
    if found.name != "aiokafka" and (exactly_once or tables):
        what = "exactly_once=True" if exactly_once else "tables="
        raise ConfigurationError(
            f'KafkaTransport(engine="{found.name}") does not support {what}; use the '
            'default engine="aiokafka" for transactions and tables'
        )
    return found


class KafkaTransport(Transport):
    """Serve message and event handlers from Kafka, NestJS-compatible on the wire.

    Args:
        bootstrap_servers: the cluster, ``"host:port"`` or a list of them.
        group_id: the consumer group every instance of this service joins.
        topics: topics (or wildcard patterns) to consume besides the handlers' patterns.
            A request arriving on one without a handler gets NestJS's "no matching
            message handler" error reply instead of timing out; events are skipped.
        max_batch_size: records per fetched partition taken from one ``getmany`` call:
            a call for ``n`` partitions takes up to ``n * max_batch_size`` records.
        max_pending_batches: fetched batches waiting per partition before the partition
            is not fetched from; in-flight records are about
            ``partitions * (1 + max_pending_batches) * max_batch_size`` (one partition's
            batch may take a whole call's share, so at most ``partitions`` times that).
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
        retry_jitter: fraction of each retry wait taken off at random (0.1: up to
            10 % shorter), so consumers failing together do not retry in lockstep; 0
            makes the waits exact.
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
        exactly_once: each partition batch's outputs (``emits=`` results, ``ctx.send``
            records), dead letters and offset commit go in one Kafka transaction, so a
            crash or rebalance neither loses nor repeats an output for
            ``read_committed`` readers (docs/kafka-exactly-once.md). Costs one
            transactional producer per assigned partition and a transaction per batch.
            Replies to requests stay outside transactions.
        transactional_id_prefix: transactional ids are ``<prefix><topic>-<partition>``;
            ``None`` means ``"<group_id>-"``. Keep it stable across restarts and unique
            per application: it is what fences a previous owner of a partition.
        transaction_timeout: seconds a transaction may take (each batch's commit); also
            the broker-side ``transaction_timeout_ms``.
        max_outputs: records one handler call may produce, at most (they are held in
            memory until the call succeeds); more fail the call.
        max_windows: open windows one window handler (``window=``) holds per
            partition, at most; a record that would open one more fails (and is
            dead-lettered).
        tables: the ``KafkaTable`` s handlers use; each partition's part of them is
            rebuilt from its changelog before the partition's first batch.
        create_topics: create missing topics for the served patterns, ``emits=`` topics
            and dead letters.
        topic_partitions: partitions of created topics (``None``: the broker default).
        replication_factor: replicas of created topics (``None``: the broker default).
        on_failure: what to do when the consumer loop dies or has had no broker
            connection for ``disconnected_timeout`` (readiness is false meanwhile):
            ``"restart"`` (default) stops and starts the transport's clients with
            backoff (1 s doubling to 30 s) until it runs again; ``"exit"`` stops the
            app, so ``app.run()`` and ``framework run`` exit with status 1.
        disconnected_timeout: seconds without a broker connection that count as a
            failure (default 60; ``None``: never, only a dead loop does).
        security: TLS and SASL settings (``KafkaSecurity``), used by every client the
            transport makes: the consumer, the producer of replies and dead letters,
            the transactional producers of ``exactly_once``, the admin client that
            creates topics, the changelog readers, and ``create_client()``. ``None``:
            PLAINTEXT. A failed login, an untrusted certificate or a protocol that does
            not match the listener fails ``start`` with a ``TransportError`` naming it.
        engine: the Kafka client library: ``"aiokafka"`` (default) or ``"confluent"``
            (confluent-kafka on librdkafka, the ``framework[confluent]`` extra; see
            "Engines" in docs/transports/kafka.md). Both run the same lanes,
            commits, retries and replies. ``"confluent"`` does not take
            ``exactly_once``, ``tables`` or window handlers.
        consumer_options: extra ``AIOKafkaConsumer`` options (with
            ``engine="confluent"``: librdkafka settings by their own dotted names).
        producer_options: extra ``AIOKafkaProducer`` options (replies, dead letters;
            with ``engine="confluent"``: librdkafka settings).
        **options: aiokafka options, routed to the consumer, the producer and the admin
            client by name (``auto_offset_reset="earliest"``, ``client_id``...); the
            confluent engine translates them to librdkafka's names.

    Raises:
        ConfigurationError: a limit below 1, a non-positive ``commit_interval``, a bad
            retry option, an aiokafka option that does not exist, that the
            framework sets itself or that belongs in ``security``, or an engine that is
            unknown, not installed, or asked for what it does not do.
    """

    name = NAME

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
        retry_jitter: float = 0.1,
        dlq_suffix: str = ".dlq",
        max_streams: int = 1000,
        stream_end_wait: float = 0.01,
        shutdown_timeout: float = 30.0,
        start_timeout: float = 30.0,
        exactly_once: bool = False,
        transactional_id_prefix: str | None = None,
        transaction_timeout: float = 60.0,
        max_outputs: int = 10_000,
        max_windows: int = 100_000,
        tables: Iterable[KafkaTable] = (),
        create_topics: bool = True,
        topic_partitions: int | None = None,
        replication_factor: int | None = None,
        on_failure: OnFailure = "restart",
        disconnected_timeout: float | None = 60.0,
        security: KafkaSecurity | None = None,
        engine: EngineName = "aiokafka",
        consumer_options: dict[str, Any] | None = None,
        producer_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self._engine = _engine(engine, exactly_once=exactly_once, tables=bool(tables))
        if on_failure not in ("restart", "exit"):
            raise ConfigurationError(
                f'KafkaTransport on_failure is "restart" or "exit", not {on_failure!r}'
            )
        for label, number in (
            ("max_batch_size", max_batch_size),
            ("max_pending_batches", max_pending_batches),
            ("max_concurrency", max_concurrency),
            ("max_streams", max_streams),
            ("commit_every", commit_every),
            ("max_outputs", max_outputs),
            ("max_windows", max_windows),
        ):
            if number < 1:
                raise ConfigurationError(f"KafkaTransport {label} must be at least 1, not {number}")
        if commit_interval <= 0:
            raise ConfigurationError(
                f"KafkaTransport commit_interval must be positive, not {commit_interval}"
            )
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
        try:
            self.policy = RetryPolicy(
                max_retries, retry_backoff, retry_backoff_max, jitter=retry_jitter
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"KafkaTransport: {exc}") from None
        self.dlq_suffix = dlq_suffix
        self.max_streams = max_streams
        self.stream_end_wait = stream_end_wait
        self.shutdown_timeout = shutdown_timeout
        self.start_timeout = start_timeout
        if transaction_timeout <= 0:
            raise ConfigurationError(
                f"KafkaTransport transaction_timeout must be positive, not {transaction_timeout}"
            )
        self.exactly_once = exactly_once
        self.transactional_id_prefix = (
            f"{group_id}-" if transactional_id_prefix is None else transactional_id_prefix
        )
        self.transaction_timeout = transaction_timeout
        self.max_outputs = max_outputs
        self.max_windows = max_windows
        self.tables = list(tables)
        self._state: PartitionState | None = None
        self.aborted_transactions = 0
        """Transactions given up since start (each one's batch was handled again)."""
        self.create_topics = create_topics
        self.topic_partitions = topic_partitions
        self.replication_factor = replication_factor
        self.security = security
        consumer, producer, admin = split_options(
            options, "KafkaTransport", security, self._engine.name
        )
        self._consumer_options = {
            "auto_offset_reset": "latest",
            "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
            # Exactly once reads only committed input, as a chain of such apps needs.
            **({"isolation_level": "read_committed"} if exactly_once else {}),
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
        self._engine.check(self._consumer_options, "KafkaTransport")
        self._engine.check(self._producer_options, "KafkaTransport")
        self._admin_options = admin
        self._options = options
        self._consumer: Any = None
        self._producer: Any = None
        self._topics: TopicCreator | None = None
        self._lanes: Lanes | None = None
        self._outputs: Outputs | None = None
        self._producing_: Producing | None = None
        self._replier: Replier | None = None
        self._fetch_task: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._running = False
        self.supervisor = Supervisor(
            self._problem,
            self._restart,
            lambda reason: self.host.fail(reason),
            on_failure=on_failure,
            disconnected_timeout=disconnected_timeout,
        )
        """Watches the running consumer (``supervisor.failure``, ``supervisor.restarts``)."""

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, join the group, and return once partitions are assigned.

        Raises:
            TransportError: the broker is unreachable, topics cannot be created, or the
                group did not assign partitions within ``start_timeout``.
        """
        router = self.host.router
        handlers = [h for h in router.handlers if h.serves(NAME)]
        policies = {h: self.policy.with_extras(h.extras, h.name) for h in handlers}
        takes_bytes = frozenset(h for h in handlers if h.signature.payload_type is bytes)
        patterns = sorted(router.patterns(NAME) | set(self.topics))
        emits: dict[MessageHandler, str] = {
            h: h.extras["emits"] for h in handlers if "emits" in h.extras
        }
        windows = {h: _window_spec(h) for h in handlers if "window" in h.extras}
        streaming = [h.name for h in handlers if h.call_stream is not None]
        if self.exactly_once and streaming:
            raise ConfigurationError(
                f"{', '.join(streaming)}: inbound streams commit as their records finish "
                "(at least once), not in per-batch transactions; serve them from a "
                "KafkaTransport without exactly_once"
            )
        if windows and self._engine.name != "aiokafka":
            raise ConfigurationError(
                f'KafkaTransport(engine="{self._engine.name}") does not serve window '
                f"handlers ({', '.join(sorted(h.name for h in windows))}); use the "
                'default engine="aiokafka"'
            )
        dispatcher = Dispatcher(router, NAME, context=_context)
        self._topics = TopicCreator(
            self.bootstrap_servers,
            partitions=self.topic_partitions,
            replication_factor=self.replication_factor,
            timeout=self.start_timeout,
            options=self._admin_options,
        )
        try:
            self._producer = self._engine.producer(
                bootstrap_servers=self.bootstrap_servers, **self._producer_options
            )
            await start_within(
                self._producer,
                self.start_timeout,
                "Kafka transport could not start on",
                self.bootstrap_servers,
                self.security,
            )
            exact = [p for p in patterns if not is_wildcard(p)]
            if self.create_topics and (exact or emits):
                await self._topics.ensure(sorted({*exact, *emits.values()}))
            if patterns:
                self._consumer = self._make_consumer(patterns)
            producing = self._producing(dispatcher, handlers, emits, windows)
            self._replier = Replier(
                self._producer, max_streams=self.max_streams, stream_end_wait=self.stream_end_wait
            )
            recovery = Recovery(
                dispatcher,
                self._producer,
                policy=self.policy,
                policies=policies,
                dlq_suffix=self.dlq_suffix,
                topics=self._topics if self.create_topics else None,
                retried=self._retried,
                gave_up=self._gave_up,
                producing=producing,
            )
            records = Records(dispatcher, recovery, self._replier, takes_bytes, producing)
            # Running before the first fetch: the fetch loop exits when this is false.
            self._running = True
            if patterns:
                await self._start_consumer(patterns, records)
                self.supervisor.watch()
        except BaseException as exc:
            self._running = False
            await self._cancel_tasks()
            await self._close_clients()
            if isinstance(exc, KafkaError | OSError):
                raise await connect_error(
                    "Kafka transport could not start on",
                    exc,
                    self.bootstrap_servers,
                    self.security,
                    self._admin_options,
                    min(self.start_timeout, _DIAGNOSE_TIMEOUT),
                ) from exc
            raise

    def _make_consumer(self, patterns: Sequence[str]) -> Any:
        options = dict(self._consumer_options)
        if any(is_wildcard(p) for p in patterns):
            # New topics matching a wildcard are found by metadata refreshes: look every
            # 30 s rather than aiokafka's 5 minutes.
            options.setdefault("metadata_max_age_ms", 30_000)
        return self._engine.consumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            **options,
        )

    def _producing(
        self,
        dispatcher: Dispatcher,
        handlers: Sequence[MessageHandler],
        emits: dict[MessageHandler, str],
        windows: dict[MessageHandler, tuple[Window, Reducer]],
    ) -> Producing | None:
        """What runs handlers that produce (``None``: none does, and no transactions)."""
        outputs: Outputs
        if (windows or self.tables) and self._consumer is not None:
            consumer_options = {
                k: v
                for k, v in self._consumer_options.items()
                if k not in ("auto_offset_reset", "isolation_level")
            }
            self._state = PartitionState(
                windows,
                self.tables,
                self._consumer,
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,
                consumer_options=consumer_options,
                admin_options=self._admin_options,
                max_windows=self.max_windows,
                timeout=self.start_timeout,
            )
        if self.exactly_once and self._consumer is not None:
            outputs = Transactions(
                self._consumer,
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,
                prefix=self.transactional_id_prefix,
                producer_options={
                    k: v
                    for k, v in self._producer_options.items()
                    if k not in ("transactional_id", "linger_ms")
                },
                timeout=self.transaction_timeout,
                aborted=self._aborted,
            )
        elif emits or self._state is not None or any(takes_kafka_context(h) for h in handlers):
            outputs = Outputs(self._producer)
        else:
            return None
        self._outputs = outputs
        self._producing_ = Producing(
            dispatcher, outputs, emits, max_outputs=self.max_outputs, state=self._state
        )
        return self._producing_

    async def _start_consumer(self, patterns: Sequence[str], records: Records) -> None:
        consumer = self._consumer
        await consumer.start()
        transactions = self._outputs if isinstance(self._outputs, Transactions) else None
        producing = self._producing_
        lanes = self._lanes = Lanes(
            consumer,
            records.handle,
            commit_every=self.commit_every,
            commit_interval=self.commit_interval,
            commit_timeout=self.commit_timeout,
            max_concurrency=self.max_concurrency,
            max_pending_batches=self.max_pending_batches,
            shutdown_timeout=self.shutdown_timeout,
            start_timeout=self.start_timeout,
            commits=transactions is None,
            prepare=None if transactions is None else transactions.prepare,
            release=None if producing is None else producing.release,
        )
        if any(is_wildcard(p) for p in patterns):
            consumer.subscribe(pattern=subscription_regex(patterns), listener=lanes.listener())
        else:
            consumer.subscribe(topics=list(patterns), listener=lanes.listener())
        self._fetch_task = asyncio.create_task(
            fetch(
                consumer,
                lanes,
                lambda: self._running,
                poll_timeout=self.poll_timeout,
                max_batch_size=self.max_batch_size,
            ),
            name="kafka-consume",
        )
        self._commit_task = asyncio.create_task(lanes.committer(), name="kafka-commit")
        try:
            async with asyncio.timeout(self.start_timeout):
                await lanes.ready.wait()
        except TimeoutError:
            raise TransportError(
                f"Kafka group {self.group_id!r} assigned no partitions within "
                f"{self.start_timeout:g} s; is the broker at {self.bootstrap_servers} "
                "healthy?"
            ) from None

    async def stop(self) -> None:
        """Stop fetching, finish in-flight records and streams, commit, leave the group."""
        await self.supervisor.stop()
        if not self._running and self._producer is None:
            return
        self._running = False
        lanes = self._lanes
        if lanes is not None:
            # Lanes stop after the record in hand (the fetch loop too, if it handles one).
            await lanes.close()
        await cancel_and_wait(self._fetch_task)
        if self._replier is not None:
            await self._replier.stop(self.shutdown_timeout)
        await cancel_and_wait(self._commit_task)
        if lanes is not None:
            await lanes.commit()
        if self._outputs is not None:
            await self._outputs.stop()
        if self._state is not None:
            self._state.clear()
        await self._close_clients()

    # -- supervision (framework/transports/kafka/_supervise.py) ------------------------

    def _problem(self) -> tuple[str, bool] | None:
        for task in (self._fetch_task, self._commit_task):
            if task is not None and task.done():
                why = "cancelled" if task.cancelled() else repr(task.exception())
                return f"the {task.get_name()} loop stopped ({why})", False
        consumer = self._consumer
        if consumer is not None and not coordinator_known(consumer):
            return "no broker connection", True
        return None

    async def _restart(self) -> None:
        self._running = False
        await self._cancel_tasks()
        await self._close_clients()
        await self.start()

    async def _cancel_tasks(self) -> None:
        await cancel_and_wait(self._fetch_task)
        await cancel_and_wait(self._commit_task)
        if self._lanes is not None:
            await self._lanes.close()
        if self._outputs is not None:
            await self._outputs.stop()
        if self._state is not None:
            self._state.clear()

    async def _close_clients(self) -> None:
        consumer, producer, topics = self._consumer, self._producer, self._topics
        self._consumer = self._producer = self._topics = None
        self._lanes = self._replier = self._outputs = self._producing_ = None
        self._state = None
        self._fetch_task = self._commit_task = None
        await stop_quietly("KafkaTransport", consumer, producer, timeout=self.shutdown_timeout)
        if topics is not None:
            with contextlib.suppress(Exception):
                await topics.close()

    # -- transport events (metrics and user observers subscribe through the host) -----

    def _retried(self, handler: MessageHandler) -> None:
        self.host.events.retried(self, handler)

    def _gave_up(self, handler: MessageHandler) -> None:
        self.host.events.dead_lettered(self, handler)

    def _aborted(self, tp: Any) -> None:
        self.aborted_transactions += 1
        if self._state is not None:
            # The changelog holds the committed state: rebuild from it before the
            # batch is handled again.
            self._state.drop([tp])

    @property
    def stateful(self) -> bool:
        """Window handlers or tables are served (and their state held) right now."""
        return self._state is not None

    def window_stats(self) -> dict[str, int]:
        """Stateful handlers: ``state_size`` (open windows and table keys held in memory
        now), ``windows_closed`` and ``late_records`` (dropped: their windows had
        closed) since start. Zeros without window handlers or tables."""
        state = self._state
        if state is None:
            return {"state_size": 0, "windows_closed": 0, "late_records": 0}
        return {
            "state_size": state.size,
            "windows_closed": state.windows_closed,
            "late_records": state.late_records,
        }

    # -- state -----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        if not self._running or self.supervisor.failure is not None:
            return False
        if self._lanes is not None and not self._lanes.ready.is_set():
            return False
        task = self._fetch_task
        return task is None or not task.done()

    @property
    def alive(self) -> bool:
        """False when the fetch or commit loop died while the transport runs."""
        if not self._running:
            return True
        tasks = (self._fetch_task, self._commit_task)
        return all(task is None or not task.done() for task in tasks)

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet handled per assigned partition, ``{(topic, partition): n}``:
        the high watermark seen by the last fetch minus the offset after the last
        handled record. Partitions not fetched from yet are left out."""
        lanes = self._lanes
        return {} if lanes is None else lanes.lag()

    def create_client(self) -> ClientProxy:
        from framework.transports.kafka.client import KafkaClient

        return KafkaClient(
            bootstrap_servers=self.bootstrap_servers,
            security=self.security,
            engine=self._engine.name,
            **self._options,
        )

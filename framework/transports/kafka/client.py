"""``KafkaClient``: request/reply, streams and events over Kafka, NestJS-compatible.

Replies: a request to ``pattern`` asks for replies on ``<pattern>.reply``. Every client
instance reads *all* partitions of the reply topics it uses, without a consumer group
(manual assignment, starting at the end of each partition when the topic is first
used), and keeps the replies whose ``kafka_correlationId`` it is waiting for. So any
number of client instances can share a reply topic, whatever its partition count, and
no group rebalance ever pauses replies. The price: each instance reads every reply on
the topics it uses; give very chatty services their own patterns.

Reply topics are created (admin client) before the first request on a pattern and the
reader's position is fixed before the request leaves, so no reply can be missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from aiokafka import TopicPartition  # type: ignore[import-untyped]
from aiokafka.errors import ConsumerStoppedError, KafkaError  # type: ignore[import-untyped]

from framework.backoff import Backoff
from framework.exceptions import (
    ConfigurationError,
    RemoteError,
    RequestTimeoutError,
    TransportError,
)
from framework.observability._context import trace_headers
from framework.transports.base import ClientProxy, HeaderHook
from framework.transports.kafka._admin import (
    TopicCreator,
    cancel_and_wait,
    split_options,
    stop_quietly,
)
from framework.transports.kafka._engines import EngineName
from framework.transports.kafka._engines import engine as engine_named
from framework.transports.kafka.security import KafkaSecurity, connect_error, start_within
from framework.transports.kafka.wire import (
    CORRELATION_ID,
    Reply,
    encode_headers,
    encode_value,
    header,
    parse_reply,
    request_headers,
)

logger = logging.getLogger("framework.kafka")

_READ_BACKOFF = Backoff(0.2, 5.0)
"""Waits between failed reads of the reply topics."""

_DIAGNOSE_TIMEOUT = 10.0
"""Seconds the extra connection that finds why ``connect`` failed may take."""


class _Call:
    """One request waiting for replies: a future (``send``) or a bounded queue
    (``stream``)."""

    __slots__ = ("future", "last", "queue")

    def __init__(self, future: asyncio.Future[Any] | None, queue: asyncio.Queue[Any] | None):
        self.future = future
        self.queue = queue
        self.last: Any = None

    def deliver(self, reply: Reply) -> bool:
        """Hand over a reply; True when the call is complete."""
        future = self.future
        if future is not None:
            if future.done():
                return True
            if reply.error is not None:
                future.set_exception(RemoteError(reply.error))
            elif reply.disposed:
                future.set_result(reply.value if reply.has_value else self.last)
            else:
                self.last = reply.value
                return False
            return True
        assert self.queue is not None
        try:
            self.queue.put_nowait(reply)
        except asyncio.QueueFull:
            self.fail(TransportError("Stream reader too slow: its reply buffer is full"))
            return True
        return reply.disposed

    def fail(self, exc: BaseException) -> None:
        if self.future is not None:
            if not self.future.done():
                self.future.set_exception(exc)
            return
        assert self.queue is not None
        # Make room so the reader sees the failure next.
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(exc)


class _Request:
    """The correlation id of a request in flight, once it has one."""

    __slots__ = ("cid",)

    def __init__(self) -> None:
        self.cid: str | None = None


class KafkaClient(ClientProxy):
    """Talk to Kafka services (ours or NestJS's): ``send``, ``stream``, ``emit``.

    Args:
        bootstrap_servers: the cluster, ``"host:port"`` or a list of them.
        default_timeout: seconds to wait for a reply (for a stream: for each item) when
            the caller gives no ``timeout``.
        reply_patterns: patterns whose reply topics are prepared at ``connect``, so the
            first request on them is not slower (others are prepared on first use).
        max_pending: requests waiting for replies at once; more raise ``TransportError``.
        stream_buffer: replies buffered per stream for a slow reader; when exceeded the
            stream fails with ``TransportError``.
        create_topics: create missing reply topics with the admin client.
        topic_partitions: partitions of created topics (``None``: the broker default).
        replication_factor: replicas of created topics (``None``: the broker default).
        topic_timeout: seconds to wait for a reply topic to be created and served.
        security: TLS and SASL settings (``KafkaSecurity``) of the producer, the reply
            reader and the admin client; ``None``: PLAINTEXT. A failed login, an
            untrusted certificate or a protocol that does not match the listener fails
            ``connect`` with a ``TransportError`` naming it.
        engine: the Kafka client library, ``"aiokafka"`` (default) or ``"confluent"``
            (the ``framework[confluent]`` extra); see ``KafkaTransport``.
        consumer_options: extra options for the reply reader (``AIOKafkaConsumer``;
            librdkafka settings with ``engine="confluent"``).
        producer_options: extra ``AIOKafkaProducer`` options (librdkafka settings with
            ``engine="confluent"``).
        **options: aiokafka options routed by name to the producer, the reply reader and
            the admin client. Producer defaults: ``acks="all"``,
            ``enable_idempotence=True``, ``linger_ms=1``.
    """

    # Trace context goes out wherever the client was made (one ContextVar.get per send,
    # beside a network round trip); the memory client adds it only for a tracing app.
    header_hooks: tuple[HeaderHook, ...] = (trace_headers,)

    def __init__(
        self,
        *,
        bootstrap_servers: str | list[str] = "127.0.0.1:9092",
        default_timeout: float = 10.0,
        reply_patterns: Iterable[str] = (),
        max_pending: int = 10_000,
        stream_buffer: int = 1000,
        create_topics: bool = True,
        topic_partitions: int | None = None,
        replication_factor: int | None = None,
        topic_timeout: float = 30.0,
        security: KafkaSecurity | None = None,
        engine: EngineName = "aiokafka",
        consumer_options: dict[str, Any] | None = None,
        producer_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if max_pending < 1 or stream_buffer < 1:
            raise ConfigurationError(
                f"KafkaClient max_pending and stream_buffer must be at least 1, not "
                f"{max_pending} and {stream_buffer}"
            )
        self._engine = _engine = engine_named(engine, "KafkaClient")
        self.bootstrap_servers = bootstrap_servers
        self.default_timeout = default_timeout
        self.reply_patterns = list(reply_patterns)
        self.max_pending = max_pending
        self.stream_buffer = stream_buffer
        self.create_topics = create_topics
        self.topic_partitions = topic_partitions
        self.replication_factor = replication_factor
        self.topic_timeout = topic_timeout
        self.security = security
        consumer, producer, admin = split_options(
            options, "KafkaClient", security, self._engine.name
        )
        # The reply reader: no group, no commits, a short long-poll so a newly added
        # reply topic is fetched quickly.
        self._consumer_options = {
            "fetch_max_wait_ms": 100,
            **{k: v for k, v in consumer.items() if k != "auto_offset_reset"},
            **(consumer_options or {}),
        }
        self._producer_options = {
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 1,
            **producer,
            **(producer_options or {}),
        }
        _engine.check(self._consumer_options, "KafkaClient")
        _engine.check(self._producer_options, "KafkaClient")
        self._admin_options = admin
        self._producer: Any = None
        self._consumer: Any = None
        self._topics: TopicCreator | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, _Call] = {}
        self._reply_partition: dict[str, int] = {}
        self._positions: dict[Any, int] = {}
        self._connect_lock = asyncio.Lock()
        self._assign_lock = asyncio.Lock()
        self._connected = False
        self._prefix = uuid.uuid4().hex[:16] + "-"
        self._ids = itertools.count(1)

    # -- connection ------------------------------------------------------------------

    async def connect(self) -> None:
        """Start the producer and the reply reader; prepare ``reply_patterns``."""
        async with self._connect_lock:
            if self._connected:
                return
            try:
                self._producer = self._engine.producer(
                    bootstrap_servers=self.bootstrap_servers, **self._producer_options
                )
                await start_within(
                    self._producer,
                    self.topic_timeout,
                    "Kafka client could not connect to",
                    self.bootstrap_servers,
                    self.security,
                )
                self._consumer = self._engine.consumer(
                    bootstrap_servers=self.bootstrap_servers,
                    group_id=None,
                    enable_auto_commit=False,
                    **self._consumer_options,
                )
                await self._consumer.start()
                self._topics = TopicCreator(
                    self.bootstrap_servers,
                    partitions=self.topic_partitions,
                    replication_factor=self.replication_factor,
                    timeout=self.topic_timeout,
                    options=self._admin_options,
                )
                self._reader = asyncio.create_task(self._read(), name="kafka-replies")
                self._connected = True
                for pattern in self.reply_patterns:
                    await self._prepare(f"{pattern}.reply")
            except BaseException as exc:
                await self._shutdown()
                if isinstance(exc, KafkaError | OSError):
                    raise await connect_error(
                        "Kafka client could not connect to",
                        exc,
                        self.bootstrap_servers,
                        self.security,
                        self._admin_options,
                        min(self.topic_timeout, _DIAGNOSE_TIMEOUT),
                    ) from exc
                raise

    async def close(self) -> None:
        """Fail waiting requests, stop reading replies, flush and close the producer."""
        async with self._connect_lock:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self._connected = False
        pending, self._pending = self._pending, {}
        for call in pending.values():
            call.fail(TransportError("The Kafka client was closed"))
        reader, self._reader = self._reader, None
        await cancel_and_wait(reader)
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        await stop_quietly("KafkaClient", consumer, producer)
        topics, self._topics = self._topics, None
        if topics is not None:
            with contextlib.suppress(Exception):
                await topics.close()
        self._reply_partition.clear()
        self._positions.clear()

    async def _ensure_connected(self) -> None:
        if not self._connected:
            await self.connect()

    # -- replies ---------------------------------------------------------------------

    async def _prepare(self, reply_topic: str) -> int:
        """Read ``reply_topic`` from its current end; returns the partition to ask for."""
        partition = self._reply_partition.get(reply_topic)
        if partition is not None:
            return partition
        async with self._assign_lock:
            partition = self._reply_partition.get(reply_topic)
            if partition is not None:
                return partition
            consumer, producer = self._consumer, self._producer
            if self.create_topics and self._topics is not None:
                await self._topics.ensure([reply_topic])
            try:
                async with asyncio.timeout(self.topic_timeout):
                    numbers = sorted(await producer.partitions_for(reply_topic))
                    added = [TopicPartition(reply_topic, p) for p in numbers]
                    ends = await consumer.end_offsets(added)
            except (KafkaError, TimeoutError) as exc:
                raise TransportError(
                    f"Reply topic {reply_topic!r} is not available: {exc!r}"
                ) from exc
            # Reassigning resets positions: restore the old ones from what the reader
            # has seen (no await in between, so the reader cannot move meanwhile).
            current = {tp: self._positions[tp] for tp in consumer.assignment()}
            consumer.assign([*current, *added])
            for tp, position in current.items():
                consumer.seek(tp, position)
            for tp in added:
                consumer.seek(tp, ends[tp])
                self._positions[tp] = ends[tp]
            # Spread requests of different clients over the partitions (NestJS clients
            # each ask for their own lowest partition).
            chosen: int = random.choice(numbers)
            self._reply_partition[reply_topic] = chosen
            return chosen

    async def _read(self) -> None:
        consumer = self._consumer
        pending = self._pending
        positions = self._positions
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
                logger.error("Reading Kafka replies failed (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            for tp, records in batches.items():
                positions[tp] = records[-1].offset + 1
                for record in records:
                    headers = record.headers
                    if not headers:
                        continue
                    cid = header(headers, CORRELATION_ID)
                    call = pending.get(cid.decode(errors="replace")) if cid else None
                    if call is None:
                        continue  # another client's reply, or one we stopped waiting for
                    reply = parse_reply(headers, record.value)
                    if reply is not None and call.deliver(reply):
                        pending.pop(reply.correlation_id, None)

    # -- ClientProxy -----------------------------------------------------------------

    async def _request(
        self, pattern: str, data: Any, call: _Call, headers: Mapping[str, str] | None
    ) -> str:
        await self._ensure_connected()
        reply_topic = f"{pattern}.reply"
        partition = await self._prepare(reply_topic)
        if len(self._pending) >= self.max_pending:
            raise TransportError(
                f"{self.max_pending} Kafka requests already wait for replies; raise "
                "max_pending or slow down"
            )
        cid = f"{self._prefix}{next(self._ids)}"
        headers = self.outgoing_headers(headers)
        self._pending[cid] = call
        try:
            value = encode_value(data)
            ack = await self._producer.send(
                pattern,
                value,
                # aiokafka refuses a record without key and value: key a null request.
                key=None if value is not None else cid.encode(),
                headers=request_headers(cid, reply_topic, partition, headers),
            )
            await ack
        except BaseException:
            self._pending.pop(cid, None)
            raise
        return cid

    @contextlib.contextmanager
    def _request_scope(self, pattern: str, limit: float) -> Iterator[_Request]:
        """What ``send`` and ``stream`` share: their errors, and forgetting the request's
        correlation id when it ends however it ends."""
        request = _Request()
        try:
            yield request
        except TimeoutError:
            raise RequestTimeoutError(pattern, limit) from None
        except KafkaError as exc:
            raise TransportError(f"Kafka request to {pattern!r} failed: {exc!r}") from exc
        finally:
            if request.cid is not None:
                self._pending.pop(request.cid, None)

    async def send(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send a request and return its reply (the last item, for a stream).

        Raises:
            RemoteError: the service answered with an error.
            RequestTimeoutError: no reply within ``timeout`` seconds.
            TransportError: the request could not be sent.
        """
        limit = self.default_timeout if timeout is None else timeout
        call = _Call(asyncio.get_running_loop().create_future(), None)
        with self._request_scope(pattern, limit) as request:
            async with asyncio.timeout(limit):
                request.cid = await self._request(pattern, data, call, headers)
                assert call.future is not None
                return await call.future

    async def stream(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Any]:
        """Send a request and yield every reply until the end of the stream.

        Raises:
            RemoteError: the service answered with an error (after earlier items).
            RequestTimeoutError: an item took longer than ``timeout`` seconds.
        """
        limit = self.default_timeout if timeout is None else timeout
        queue: asyncio.Queue[Any] = asyncio.Queue(self.stream_buffer)
        call = _Call(None, queue)
        with self._request_scope(pattern, limit) as request:
            async with asyncio.timeout(limit):
                request.cid = await self._request(pattern, data, call, headers)
            while True:
                async with asyncio.timeout(limit):
                    reply = await queue.get()
                if isinstance(reply, BaseException):
                    raise reply
                if reply.error is not None:
                    raise RemoteError(reply.error)
                if reply.has_value:
                    yield reply.value
                if reply.disposed:
                    return

    async def emit(
        self,
        pattern: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Produce one event to topic ``pattern`` and wait for the broker's ack.

        Raises:
            TransportError: the broker did not accept the record.
        """
        if not self._connected:
            await self.connect()
        raw_key = key.encode() if isinstance(key, str) else key
        value = encode_value(data)
        if value is None and raw_key is None:
            raw_key = b""  # aiokafka refuses a record without key and value
        try:
            ack = await self._producer.send(
                pattern, value, key=raw_key, headers=encode_headers(self.outgoing_headers(headers))
            )
            await ack
        except KafkaError as exc:
            raise TransportError(f"Kafka emit to {pattern!r} failed: {exc!r}") from exc

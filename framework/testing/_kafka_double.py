"""``KafkaTestBroker``: Kafka handlers without a broker (FastStream's TestKafkaBroker).

It is a transport named ``"kafka"``, so it serves exactly the handlers a
``KafkaTransport`` would, and it runs a record through the transport's own objects:
``Records`` (the per-record path through the ``Dispatcher``: request or event, payload
decoding, several handlers per topic), ``Recovery`` (retries with the handler's policy,
then the dead-letter record with its ``kafka_dlt-*`` headers) and ``Replier`` (NestJS
reply records, streams). What it replaces is only the I/O: topics are in-memory logs of
aiokafka ``ConsumerRecord``s (offsets per partition), the producer appends to them, and
a produced record (or batch) is handled before ``produce`` returns. Not covered: the
fetch loop, consumer groups and rebalances, offset commits, the broker's own limits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiokafka.structs import (  # type: ignore[import-untyped]
    ConsumerRecord,
    RecordMetadata,
    TopicPartition,
)

from framework.exceptions import RemoteError, RequestTimeoutError, TransportError
from framework.messaging.dispatch import Dispatcher
from framework.transports.base import ClientProxy, Transport
from framework.transports.kafka._consume import NAME, Records
from framework.transports.kafka._lanes import Lane
from framework.transports.kafka._recovery import Recovery
from framework.transports.kafka._replies import Replier
from framework.transports.kafka.server import KafkaTransport, _context
from framework.transports.kafka.wire import (
    encode_headers,
    encode_value,
    parse_reply,
    request_headers,
)

Headers = Mapping[str, str | bytes] | None


class _Lane(Lane):
    """A partition lane whose retry waits are recorded, and only really waited for when
    the broker was made with ``wait_retries=True``."""

    def __init__(self, tp: Any, broker: KafkaTestBroker) -> None:
        super().__init__(tp)
        self._broker = broker
        self.lock = asyncio.Lock()  # a partition is handled one batch at a time

    async def sleep(self, seconds: float) -> bool:
        self._broker.retry_delays.append(seconds)
        if self._broker.wait_retries:
            return bool(await super().sleep(seconds))
        return bool(self.open)


class _Producer:
    """The aiokafka producer calls the transport makes, appending to the broker's logs."""

    def __init__(self, broker: KafkaTestBroker) -> None:
        self._broker = broker

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        record = self._broker._append(topic, value, key, partition, headers or [])
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ack.set_result(
            RecordMetadata(
                topic,
                record.partition,
                TopicPartition(topic, record.partition),
                record.offset,
                record.timestamp,
                0,
                None,
            )
        )
        return ack


class KafkaTestBroker(Transport):
    """Serve the app's Kafka handlers from in-memory topics, in the test's own task.

    Use it in place of the ``KafkaTransport`` (with the same retry settings)::

        kafka = KafkaTestBroker(KafkaTransport(max_retries=2, dlq_suffix=".dead"))
        async with create_testing_module(AppModule).with_transports(kafka).compile():
            await kafka.produce("orders.created", {"id": 1}, key="1")   # handled now
            assert kafka.records("orders.created.dead") == []

    Args:
        like: a ``KafkaTransport`` whose retry policy (``max_retries``, backoff,
            jitter, per-handler extras), ``dlq_suffix``, ``max_streams`` and
            ``stream_end_wait`` apply; it is never started. ``None``: the defaults.
        wait_retries: really wait the retry backoff (``False``, the default, records the
            waits in ``retry_delays`` and retries at once).

    Attributes:
        retry_delays: every retry wait the policy asked for, in seconds, in order.
    """

    name = NAME

    def __init__(self, like: KafkaTransport | None = None, *, wait_retries: bool = False) -> None:
        self.settings = like or KafkaTransport()
        self.wait_retries = wait_retries
        self.retry_delays: list[float] = []
        self._logs: dict[tuple[str, int], list[Any]] = defaultdict(list)
        self._lanes: dict[tuple[str, int], _Lane] = {}
        # Set (and replaced) on every append: waiters for a reply wake and look again.
        self._appended = asyncio.Event()
        self._records: Records | None = None
        self._replier: Replier | None = None

    # -- Transport -----------------------------------------------------------------

    async def start(self) -> None:
        router = self.host.router
        handlers = [h for h in router.handlers if h.serves(NAME)]
        base = self.settings
        policies = {h: base.policy.with_extras(h.extras, h.name) for h in handlers}
        takes_bytes = frozenset(h for h in handlers if h.signature.payload_type is bytes)
        dispatcher = Dispatcher(router, NAME, context=_context)
        producer = _Producer(self)
        self._replier = Replier(
            producer, max_streams=base.max_streams, stream_end_wait=base.stream_end_wait
        )
        recovery = Recovery(
            dispatcher,
            producer,
            policy=base.policy,
            policies=policies,
            dlq_suffix=base.dlq_suffix,
            retried=lambda h: self.host.events.retried(self, h),
            gave_up=lambda h: self.host.events.dead_lettered(self, h),
        )
        self._records = Records(dispatcher, recovery, self._replier, takes_bytes)

    async def stop(self) -> None:
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()
        if self._replier is not None:
            await self._replier.stop(self.settings.shutdown_timeout)
        self._records = self._replier = None

    def create_client(self) -> ClientProxy:
        return KafkaTestClient(self)

    # -- producing -----------------------------------------------------------------

    def _append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> Any:
        part = partition or 0  # None: the test double has one partition per topic
        log = self._logs[(topic, part)]
        record = ConsumerRecord(
            topic=topic,
            partition=part,
            offset=len(log),
            timestamp=int(time.time() * 1000),
            timestamp_type=0,
            key=key,
            value=value,
            checksum=None,
            serialized_key_size=len(key) if key is not None else -1,
            serialized_value_size=len(value) if value is not None else -1,
            headers=tuple(headers),
        )
        log.append(record)
        appended, self._appended = self._appended, asyncio.Event()
        appended.set()
        return record

    async def _handle(self, topic: str, partition: int, records: list[Any]) -> None:
        if self._records is None:
            raise TransportError("KafkaTestBroker is not started: start the app first")
        tp = (topic, partition)
        lane = self._lanes.get(tp)
        if lane is None:
            lane = self._lanes[tp] = _Lane(TopicPartition(topic, partition), self)
        async with lane.lock:
            await self._records.handle(lane, records)

    async def produce(
        self,
        topic: str,
        value: Any,
        *,
        key: str | bytes | None = None,
        headers: Headers = None,
        partition: int = 0,
    ) -> Any:
        """Produce one record (encoded as ``KafkaClient.emit`` would) and handle it:
        when this returns, its handlers ran, retries and dead-lettering included.

        Returns:
            The aiokafka ``ConsumerRecord`` the handlers saw (``offset`` and all).
        """
        (record,) = await self.produce_batch(
            topic, [value], keys=[key], headers=headers, partition=partition
        )
        return record

    async def produce_batch(
        self,
        topic: str,
        values: Sequence[Any],
        *,
        keys: Sequence[str | bytes | None] | None = None,
        headers: Headers = None,
        partition: int = 0,
    ) -> list[Any]:
        """Produce ``values`` to one partition and hand them to the handlers as one
        fetched batch (the path a ``getmany`` result takes), in offset order."""
        raw_keys = [k.encode() if isinstance(k, str) else k for k in (keys or [None] * len(values))]
        encoded = encode_headers(headers)
        records = [
            self._append(topic, encode_value(v), k, partition, encoded)
            for v, k in zip(values, raw_keys, strict=True)
        ]
        await self._handle(topic, partition, records)
        return records

    # -- requests --------------------------------------------------------------------

    async def request(
        self, pattern: str, data: Any, *, headers: Headers = None, timeout: float = 5.0
    ) -> Any:
        """Send a request as a NestJS client would and return its reply (the last item
        of a stream).

        Raises:
            RemoteError: the handler answered with an error (NestJS's error reply).
            RequestTimeoutError: no end of reply within ``timeout`` seconds.
        """
        last: Any = None
        async for item in self.stream(pattern, data, headers=headers, timeout=timeout):
            last = item
        return last

    async def stream(
        self, pattern: str, data: Any, *, headers: Headers = None, timeout: float = 5.0
    ) -> AsyncIterator[Any]:
        """Send a request and yield every reply item until the end of the stream."""
        correlation_id = uuid.uuid4().hex
        reply_topic = f"{pattern}.reply"
        sent = request_headers(correlation_id, reply_topic, 0, headers)
        record = self._append(pattern, encode_value(data), None, 0, sent)
        await self._handle(pattern, 0, [record])
        log = self._logs[(reply_topic, 0)]
        position = 0
        while True:
            try:
                async with asyncio.timeout(timeout):
                    while position >= len(log):
                        await self._appended.wait()
            except TimeoutError:
                raise RequestTimeoutError(pattern, timeout) from None
            while position < len(log):
                reply_record = log[position]
                position += 1
                reply = parse_reply(reply_record.headers, reply_record.value)
                if reply is None or reply.correlation_id != correlation_id:
                    continue
                if reply.error is not None:
                    raise RemoteError(reply.error)
                if reply.has_value:
                    yield reply.value
                if reply.disposed:
                    return

    # -- what happened ---------------------------------------------------------------

    def records(self, topic: str, partition: int | None = None) -> list[Any]:
        """Every record on ``topic`` (produced by the test, replies, dead letters,
        emits of ``create_client()``), in offset order per partition."""
        if partition is not None:
            return list(self._logs.get((topic, partition), []))
        return [r for (t, _), log in sorted(self._logs.items()) if t == topic for r in log]

    def dead_letters(self, topic: str) -> list[Any]:
        """The records dead-lettered from ``topic`` to ``<topic><dlq_suffix>``."""
        return self.records(topic + self.settings.dlq_suffix)


class KafkaTestClient(ClientProxy):
    """A ``ClientProxy`` into a ``KafkaTestBroker``: ``emit`` produces (and handles),
    ``send``/``stream`` are NestJS-style requests."""

    def __init__(self, broker: KafkaTestBroker) -> None:
        self._broker = broker

    async def send(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        return await self._broker.request(
            pattern, data, headers=self.outgoing_headers(headers), timeout=timeout or 5.0
        )

    async def stream(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Any]:
        async for item in self._broker.stream(
            pattern, data, headers=self.outgoing_headers(headers), timeout=timeout or 5.0
        ):
            yield item

    async def emit(
        self,
        pattern: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await self._broker.produce(pattern, data, key=key, headers=self.outgoing_headers(headers))

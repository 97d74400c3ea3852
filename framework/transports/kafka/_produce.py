"""Producing from handlers: ``emits=`` results and ``ctx.send``, at least once.

What a handler call produces is held in memory until the call succeeds, then handed to
an ``Outputs``: a failed attempt (retried, then dead-lettered) produces nothing, so a
retry never duplicates the outputs of the attempt before it. ``Outputs`` sends them with
the transport's producer and keeps their broker acks per partition; when the partition's
batch ends they are awaited, and a record whose outputs were not acknowledged is
unfinished (the partition replays from it): the input offset moves only past records
whose outputs the broker has. ``_transactions.Transactions`` is the exactly-once kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.exceptions import TransportError
from framework.messaging.dispatch import Dispatcher, Inbound
from framework.messaging.router import MessageHandler
from framework.messaging.streams import close, is_stream, iterate
from framework.transports.kafka import _tables as tables
from framework.transports.kafka.wire import encode_headers, encode_value

if TYPE_CHECKING:
    from framework.transports.kafka._state import PartitionState

logger = logging.getLogger("framework.kafka")


class _InputKey:
    __slots__ = ()

    def __repr__(self) -> str:
        return "INPUT_KEY"


INPUT_KEY: Any = _InputKey()
"""The default key of a produced record: the key of the input record in hand."""

Output = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]], int | None]
"""One record to produce: topic, value, key, headers, partition (``None``: by key)."""


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """A handler result (or stream item) that says how to produce itself.

    Return one from an ``emits=`` handler (or yield them) to set the key, headers or
    topic of the output record; a plain value is produced with the input's key.

    Attributes:
        value: the record value, encoded as every Kafka value is (bytes and str as
            they are, the rest as JSON, ``None`` as a null value).
        key: ``str`` or ``bytes``, ``None`` for no key; by default the input's key.
        headers: header names to ``str`` or ``bytes`` values.
        topic: where to produce it instead of the handler's ``emits=`` topic.
    """

    value: Any
    key: str | bytes | None = INPUT_KEY
    headers: Mapping[str, str | bytes] | None = None
    topic: str | None = None


def output(topic: str, value: Any, key: Any, headers: Any, input_key: bytes | None) -> Output:
    """An ``Output`` from a handler's value; encoding errors raise here, in the handler's
    call, so they fail the call (and are retried or dead-lettered) like any error."""
    raw_key = input_key if key is INPUT_KEY else key.encode() if isinstance(key, str) else key
    raw = encode_value(value)
    if raw is None and raw_key is None:
        raw_key = b""  # aiokafka refuses a record without key and value; Kafka does not
    return topic, raw, raw_key, encode_headers(headers), None


class Collected(list[Output]):
    """The outputs of one handler call, at most ``limit`` of them."""

    __slots__ = ("input_key", "limit")

    def __init__(self, input_key: bytes | None, limit: int) -> None:
        super().__init__()
        self.input_key = input_key
        self.limit = limit

    def add(self, topic: str, value: Any, key: Any = INPUT_KEY, headers: Any = None) -> None:
        if len(self) >= self.limit:
            raise TransportError(
                f"a Kafka handler call produced more than max_outputs={self.limit} records"
            )
        self.append(output(topic, value, key, headers, self.input_key))

    def raw(self, topic: str, value: bytes | None, key: bytes, partition: int) -> None:
        """A record of our own (a changelog entry): not counted against ``limit``."""
        self.append((topic, value, key, [], partition))

    def result(self, topic: str, value: Any) -> None:
        """An ``emits=`` result (or stream item): a ``KafkaRecord`` or a plain value."""
        if value.__class__ is KafkaRecord:
            self.add(value.topic or topic, value.value, value.key, value.headers)
        else:
            self.add(topic, value)


class Outputs:
    """Sends handlers' outputs with the transport's producer, at least once.

    Args:
        producer: the transport's ``AIOKafkaProducer``.
    """

    transactional = False
    """Dead letters go out in the partition's transaction (no retry of their own)."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._acks: dict[Any, list[tuple[int, asyncio.Future[Any]]]] = {}

    async def begin(self, lane: Any, records: list[Any]) -> int:
        """Before a batch of ``lane``: how many of ``records``, from the first, are
        already finished (by an earlier owner of the partition)."""
        return 0

    async def producer(self, tp: Any) -> Any:
        """The producer for records produced on behalf of partition ``tp``'s records."""
        return self._producer

    async def send(self, tp: Any, offset: int, outputs: list[Output]) -> None:
        """Send the outputs of input record ``offset`` of ``tp``; their acks are awaited
        by ``finish``."""
        producer = await self.producer(tp)
        acks = self._acks.setdefault(tp, [])
        for topic, value, key, headers, partition in outputs:
            ack = await producer.send(topic, value, key=key, headers=headers, partition=partition)
            acks.append((offset, ack))

    async def finish(self, lane: Any, records: list[Any], finished: int) -> int:
        """End a batch of ``lane``'s records of which ``finished`` are finished: wait for
        the acks of their outputs. Returns how many records, from the first, are
        finished now (a record whose outputs failed and those after it are not)."""
        acks = self._acks.pop(lane.tp, None)
        if not acks:
            return finished
        results = await asyncio.gather(*(ack for _, ack in acks), return_exceptions=True)
        pairs = zip(acks, results, strict=True)
        failed = [offset for (offset, _), r in pairs if isinstance(r, Exception)]
        if not failed:
            return finished
        first = min(failed)
        logger.error(
            "%d output record(s) of %s were not delivered (%r); replaying from offset %d",
            len(failed),
            lane.tp,
            next(r for r in results if isinstance(r, Exception)),
            first,
        )
        return min(finished, next(i for i, r in enumerate(records) if r.offset >= first))

    async def settle(self, tp: Any) -> None:
        """Wait for the acks of what was sent for ``tp``'s batch so far (failures are
        reported by ``finish``)."""
        acks = self._acks.get(tp)
        if acks:
            await asyncio.gather(*(ack for _, ack in acks), return_exceptions=True)

    async def release(self, partitions: set[Any]) -> None:
        """Revoked partitions (once their lanes ended)."""

    async def stop(self) -> None:
        """Release what this owns (the transport stops the shared producer)."""


Call = Callable[[MessageHandler, Inbound], Awaitable[Any]]


class Producing:
    """Runs handlers that may produce: ``emits=`` handlers and handlers that take a
    ``KafkaContext`` (whose ``send`` collects into the call's outputs).

    Args:
        dispatcher: runs the handler.
        outputs: where a successful call's outputs go.
        emits: the ``emits=`` topic of each handler that has one.
        max_outputs: records one handler call may produce, at most.
        state: the window stores and tables of the partitions, or ``None``.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        outputs: Outputs,
        emits: Mapping[MessageHandler, str],
        *,
        max_outputs: int,
        state: PartitionState | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self.outputs = outputs
        self._emits = dict(emits)
        self.max_outputs = max_outputs
        self.state = state
        self._broken: set[Any] = set()  # partitions whose batch must be handled again
        self._changelogs = {} if state is None else {h: state.changelog(h) for h in state.specs}

    async def begin(self, lane: Any, records: list[Any]) -> int:
        """Before a batch of ``lane``: the outputs' ``begin`` (records already finished
        by an earlier owner), then the window stores of the partition rebuilt."""
        skip = await self.outputs.begin(lane, records)
        if self.state is not None:
            await self.state.ensure(lane.tp, self._dispatcher.route(lane.tp.topic).events)
        return skip

    async def release(self, partitions: set[Any]) -> None:
        """Revoked partitions: their producers (exactly once) and their window state."""
        await self.outputs.release(partitions)
        if self.state is not None:
            self.state.drop(partitions)

    def caller(self, handler: MessageHandler) -> Call:
        """How to call ``handler``: through ``call`` if it may produce, else directly
        (no cost for handlers that do not)."""
        if handler in self._emits or takes_kafka_context(handler):
            return self.call
        if self.state is not None and self.state.tables:
            return self.call  # any handler may use a table
        return self._dispatcher.call

    async def call(self, handler: MessageHandler, inbound: Inbound) -> Any:
        """Run ``handler``; when it succeeds, send what it produced."""
        record = inbound.raw
        collected = Collected(record.key, self.max_outputs)
        ctx = self._dispatcher.context(inbound) if handler.needs_context else None
        if ctx is not None:
            ctx.outputs = collected  # type: ignore[attr-defined]
        changelog = self._changelogs.get(handler)
        state, tp = self.state, inbound.source.tp
        if state is not None:
            # Rebuilt after a failed call's outputs (below): a dict lookup otherwise.
            await state.ensure(tp, (handler,))
        log: list[Any] = []
        token = tables.current.set((tp, collected, log)) if state is not None else None
        try:
            result = await self._dispatcher.call(handler, inbound)
            topic = self._emits.get(handler)
            if changelog is not None:
                if result is not None:
                    self._window(handler, inbound, result, collected, topic, changelog)
            elif topic is not None and result is not None:
                if is_stream(result):
                    source = iterate(result)
                    try:
                        async for item in source:
                            if item is not None:
                                collected.result(topic, item)
                    finally:
                        await close(source)
                else:
                    collected.result(topic, result)
        except BaseException:
            tables.undo(log)
            raise
        finally:
            if ctx is not None:
                ctx.outputs = None  # type: ignore[attr-defined]
            if token is not None:
                tables.current.reset(token)
        if collected:
            try:
                await self.outputs.send(tp, record.offset, collected)
            except Exception:
                if state is not None:
                    # The state moved on (a window may have closed) but its outputs did
                    # not leave: the whole batch is handled again, from the state its
                    # changelog has (``finish``).
                    self._broken.add(tp)
                raise
        return result

    def _window(
        self,
        handler: MessageHandler,
        inbound: Inbound,
        value: Any,
        collected: Collected,
        topic: str | None,
        changelog: str,
    ) -> None:
        """Fold a window handler's result in; the windows it closed go to the
        ``emits=`` topic with the call's other outputs (the store's changelog entries
        leave once per batch, from ``finish``)."""
        assert self.state is not None and topic is not None
        record = inbound.raw
        store = self.state.store(handler, inbound.source.tp)
        for window in store.add(record.key, record.timestamp, value):
            collected.add(topic, window.as_json(), window.key)

    async def finish(self, lane: Any, records: list[Any], finished: int) -> int:
        """End a batch: write the window stores' changelog entries (after the batch's
        other outputs were acknowledged, at least once: a closed window's deletion never
        lands before its emission), then the outputs' ``finish``. Returns how many
        records are finished; when fewer than ``finished``, the partition's state is
        rebuilt from its changelog before they are handled again."""
        state, tp = self.state, lane.tp
        if tp in self._broken:
            self._broken.discard(tp)
            finished = 0
        if state is not None and finished:
            entries: list[Output] = []
            for handler, store in state.stores_of(tp):
                changelog = self._changelogs[handler]
                entries.extend(
                    (changelog, value, key, [], tp.partition) for key, value in store.drain()
                )
            if entries:
                try:
                    if not self.outputs.transactional:
                        await self.outputs.settle(tp)
                    # Tied to the batch's first record: if they fail, all of it again.
                    await self.outputs.send(tp, records[0].offset, entries)
                except Exception as exc:
                    logger.error("Kafka changelog write of %s failed: %r", tp, exc)
                    finished = 0
        done = await self.outputs.finish(lane, records, finished)
        if state is not None and done < finished:
            state.drop([tp])
        return done


def takes_kafka_context(handler: MessageHandler) -> bool:
    """The handler takes a ``KafkaContext`` (so it may ``send``)."""
    from framework.transports.kafka.context import KafkaContext  # (it imports us)

    ctx = handler.signature.context_type
    return ctx is not None and issubclass(ctx, KafkaContext)

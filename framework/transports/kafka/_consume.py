"""The fetch loop, and the one path every record takes through its handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka.errors import ConsumerStoppedError  # type: ignore[import-untyped]

from framework.backoff import Backoff
from framework.messaging.dispatch import Dispatcher, Failure, Inbound, Route
from framework.messaging.errors import error_payload
from framework.messaging.router import MessageHandler
from framework.transports.kafka._lanes import Lane, Lanes
from framework.transports.kafka._produce import Call, Producing
from framework.transports.kafka._recovery import Recovery
from framework.transports.kafka._replies import Replier
from framework.transports.kafka._streams import PartitionStreams
from framework.transports.kafka.wire import RequestInfo, payload, request_info

logger = logging.getLogger("framework.kafka")

NAME = "kafka"

# While some partitions are full, getmany waits at most this long for the others, so a
# full partition that made room is fetched again soon (a pending getmany cannot be told
# about it, and cancelling one upsets aiokafka's poll-interval bookkeeping).
_BUSY_POLL_MS = 5

_FETCH_BACKOFF = Backoff(0.2, 5.0)
"""Waits between failed fetches."""

_JSON_FIRST = frozenset(b"{[")

Decoder = Callable[[bytes | None], Any]


def _raw(value: bytes | None) -> Any:
    return value


async def fetch(
    consumer: Any,
    lanes: Lanes,
    running: Callable[[], bool],
    *,
    poll_timeout: float,
    max_batch_size: int,
) -> None:
    """Fetch batches and hand them to ``lanes`` until the consumer stops or
    ``running()`` turns false. A failing fetch is retried with backoff: this loop
    never dies of one."""
    poll_ms = int(poll_timeout * 1000)
    busy_poll_ms = min(poll_ms, _BUSY_POLL_MS)
    failures = 0
    while True:
        try:
            # max_batch_size is per partition: one getmany's records are shared by the
            # partitions it returns, and a batch of a few records per partition costs its
            # lane a task hop and a commit check each (500 for all of 4 partitions ran at
            # 0.66x of the strongest bare loop, 500 each at 0.9-1.0x).
            ready = lanes.fetchable()
            if ready is None:
                share = max(len(consumer.assignment()), 1) * max_batch_size
                batches = await consumer.getmany(timeout_ms=poll_ms, max_records=share)
            elif ready:
                batches = await consumer.getmany(
                    *ready, timeout_ms=busy_poll_ms, max_records=len(ready) * max_batch_size
                )
            else:
                await lanes.wait_for_room(poll_timeout)
                continue
            failures = 0
        except ConsumerStoppedError:
            return
        except Exception as exc:
            failures += 1
            delay = _FETCH_BACKOFF.delay(failures)
            logger.error("Kafka fetch failed (%r); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            continue
        if not running():
            return
        await lanes.take(batches)


class Records:
    """Runs a lane's batch through the handlers, record by record in offset order.

    Every record takes the same path: a record is a request only when a message
    handler serves its topic (or nothing does, for NestJS's no-handler reply) and it
    carries the correlation headers; headers are looked at only then. Anything else is
    an event for each event handler of the topic, in turn, each failure recovered
    (retried, dead-lettered) before the next handler runs.

    Args:
        dispatcher: finds and runs the handlers.
        recovery: what to do when an event handler fails.
        replier: writes the replies of requests.
        takes_bytes: handlers whose payload is typed ``bytes``: they get the record
            value untouched (others get it by NestJS's parser rules, ``wire.payload``).
        producing: runs the handlers that produce and ends each batch's outputs (waits
            for their acks, or commits their transaction); ``None`` when no handler
            produces and there are no transactions.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        recovery: Recovery,
        replier: Replier,
        takes_bytes: frozenset[MessageHandler] = frozenset(),
        producing: Producing | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._recovery = recovery
        self._replier = replier
        self._takes_bytes = takes_bytes
        self._producing = producing
        self._streams = PartitionStreams(dispatcher, recovery)

    def _decoder(self, handler: MessageHandler) -> Decoder:
        return _raw if handler in self._takes_bytes else payload

    async def handle(self, lane: Lane, records: list[Any]) -> int:
        """Handle ``records`` (one partition's, in offset order); returns how many, from
        the first, are finished (see ``lanes.BatchHandler``)."""
        topic = lane.tp.topic
        route = self._dispatcher.route(topic)
        handlers = route.events or ((route.message,) if route.message is not None else ())
        may_request = route.message is not None or not route.events
        single = handlers[0] if len(handlers) == 1 else None
        producing = self._producing
        if single is not None and not may_request:
            if single.call_stream is not None:
                return await self._streams.handle(lane, records, single, self._decoder(single))
            if single.batch is not None:
                if producing is None:
                    return await self._batched(lane, records, single)
                return await self._batched_producing(lane, records, single, producing)
            if producing is None and not single.needs_context:
                return await self._plain(lane, records, single)
        decode = self._decoder(single) if single is not None else payload
        # A handler that reads no context never sees the Inbound, and nothing keeps it
        # past the record: one serves the whole batch (building one per record costs a
        # tenth of a small record's validation).
        shared = (
            Inbound(topic, None, None, None, lane)
            if single is not None and not single.needs_context
            else None
        )
        call: Call = self._dispatcher.call
        if producing is not None and single is not None:
            call = producing.caller(single)
        recover = self._recovery.recover
        finished = 0  # records[:finished] are done
        todo = records
        try:
            if producing is not None:
                finished = await producing.begin(lane, records)
                todo = records[finished:] if finished else records
            for record in todo:
                if not lane.open:
                    break
                if may_request:
                    headers = record.headers
                    info = request_info(headers) if headers else None
                    if info is not None:
                        await self._request(lane, record, info, route)
                        finished += 1
                        continue
                if shared is None:
                    inbound = Inbound(topic, None, None, record, lane)
                else:
                    inbound = shared
                    inbound.raw = record
                if single is not None:
                    try:
                        # JSON values go to the validator as they are.
                        value = record.value
                        inbound.payload = (
                            value if value and value[0] in _JSON_FIRST else decode(value)
                        )
                        await call(single, inbound)
                    except Exception as exc:
                        if not await recover(lane, inbound, single, exc):
                            break
                elif not await self._events(lane, inbound, handlers):
                    break
                finished += 1
        except Exception:
            logger.exception("Kafka lane %s failed; replaying its unfinished records", lane.tp)
        finally:
            if lane.acks:
                await self._replier.settle(lane)
            if producing is not None:
                finished = await producing.finish(lane, records, finished)
        return finished

    async def _plain(self, lane: Lane, records: list[Any], handler: MessageHandler) -> int:
        """The common case: a topic whose one event handler reads no context and
        produces nothing. The handler's call is awaited on each payload directly, as a
        bare consumer loop would, and an ``Inbound`` is built only for a record whose
        handler failed (its recovery needs one). The general loop in ``handle`` (an
        ``Inbound`` per record, the dispatcher's ``call``) cost a tenth of a bare
        aiokafka loop's instructions per record more."""
        call = handler.call
        decode = self._decoder(handler)
        finished = 0  # records[:finished] are done
        try:
            for record in records:
                if not lane.open:
                    break
                value = record.value
                payload = None
                try:
                    # JSON values go to the validator as they are.
                    payload = value if value and value[0] in _JSON_FIRST else decode(value)
                    await call(payload, None)
                except Exception as exc:
                    inbound = Inbound(lane.tp.topic, payload, None, record, lane)
                    if not await self._recovery.recover(lane, inbound, handler, exc):
                        break
                finished += 1
        except Exception:
            logger.exception("Kafka lane %s failed; replaying its unfinished records", lane.tp)
        return finished

    async def _batched_producing(
        self, lane: Lane, records: list[Any], handler: MessageHandler, producing: Producing
    ) -> int:
        """``_batched`` between the outputs' ``begin`` and ``finish`` (exactly once: the
        batch's dead letters and offset commit in one transaction)."""
        finished = 0
        try:
            finished = await producing.begin(lane, records)
            finished += await self._batched(lane, records[finished:], handler)
        except Exception:
            logger.exception("Kafka lane %s failed; replaying its unfinished records", lane.tp)
        finally:
            finished = await producing.finish(lane, records, finished)
        return finished

    async def _batched(self, lane: Lane, records: list[Any], handler: MessageHandler) -> int:
        """A topic whose one handler takes batches: up to ``max_batch`` records of this
        fetch at a time. A record that does not validate is dead-lettered at once and
        the batch goes on without it; a record is finished once its batch was handled."""
        assert handler.batch is not None and handler.validate_item is not None
        size = handler.batch.max_size
        validate = handler.validate_item
        decode = self._decoder(handler)
        topic = lane.tp.topic
        recover = self._recovery.recover
        finished = 0  # records[:finished] are done
        values: list[Any] = []
        held: list[Inbound] = []
        try:
            for index, record in enumerate(records):
                if not lane.open:
                    return finished
                inbound = Inbound(topic, None, None, record, lane)
                try:
                    value = record.value
                    inbound.payload = value if value and value[0] in _JSON_FIRST else decode(value)
                    values.append(validate(inbound.payload))
                except Exception as exc:
                    if not await recover(lane, inbound, handler, exc):
                        return finished
                    if not values:
                        finished = index + 1
                    continue
                held.append(inbound)
                if len(values) >= size:
                    if not await self._run_batch(lane, handler, values, held):
                        return finished
                    values, held = [], []
                    finished = index + 1
            if values and (not lane.open or not await self._run_batch(lane, handler, values, held)):
                return finished
            finished = len(records)
        except Exception:
            logger.exception("Kafka lane %s failed; replaying its unfinished records", lane.tp)
        return finished

    async def _run_batch(
        self, lane: Lane, handler: MessageHandler, values: list[Any], held: list[Inbound]
    ) -> bool:
        """Handle one batch; if it fails, each of its records alone (a batch of one),
        and the ones failing then are retried and dead-lettered like single events.
        False if the lane closed first."""
        assert handler.call_batch is not None
        ctx = self._dispatcher.context(held[0]) if handler.needs_context else None
        try:
            await handler.call_batch(values, ctx)
            return True
        except Exception as exc:
            logger.warning(
                "%s failed on a batch of %d (%r); handling its records one by one",
                handler.name,
                len(values),
                exc,
            )
        for inbound in held:
            try:
                await self._dispatcher.call(handler, inbound)
            except Exception as exc:
                if not await self._recovery.recover(lane, inbound, handler, exc):
                    return False
        return True

    async def _events(
        self, lane: Lane, inbound: Inbound, handlers: tuple[MessageHandler, ...]
    ) -> bool:
        """An event for several handlers (or none); False if the lane closed."""
        if not handlers:
            logger.warning("No Kafka handler for topic %r; record skipped", inbound.pattern)
            return True
        value = inbound.raw.value
        producing = self._producing
        for handler in handlers:
            try:
                inbound.payload = self._decoder(handler)(value)
                if producing is None:
                    await self._dispatcher.call(handler, inbound)
                else:
                    await producing.caller(handler)(handler, inbound)
            except Exception as exc:
                if not await self._recovery.recover(lane, inbound, handler, exc):
                    return False
        return True

    async def _request(self, lane: Lane, record: Any, info: RequestInfo, route: Route) -> None:
        handler = route.message
        inbound = Inbound(record.topic, None, None, record, lane)
        if handler is None:
            outcome = await self._dispatcher.request(inbound, route)  # NOT_FOUND
        else:
            try:
                inbound.payload = self._decoder(handler)(record.value)
            except Exception as exc:  # text that is not UTF-8
                outcome = Failure(error_payload(exc, where=handler.name))
            else:
                outcome = await self._dispatcher.request(inbound, route)
        await self._replier.answer(lane, info, outcome)

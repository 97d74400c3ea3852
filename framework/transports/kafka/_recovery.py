"""Retries with backoff and dead-lettering of records whose handler keeps failing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from framework.backoff import Backoff
from framework.exceptions import TransportError
from framework.messaging.dispatch import Dispatcher, Inbound
from framework.messaging.router import MessageHandler
from framework.transports.kafka._admin import TopicCreator
from framework.transports.kafka._lanes import Lane
from framework.transports.kafka._produce import Producing
from framework.transports.kafka._retry import RetryPolicy, is_poison
from framework.transports.kafka.wire import dead_letter_headers

logger = logging.getLogger("framework.kafka")

_MIN_DEAD_LETTER_WAIT = 0.05
"""Seconds before re-sending a dead letter the broker refused, at least."""


def _ignore(handler: MessageHandler) -> None:
    return None


class Recovery:
    """The answer to a failed event handler: retry it with backoff, then dead-letter.

    Args:
        dispatcher: runs the handler again (``Dispatcher.call``).
        producer: writes dead letters (an ``AIOKafkaProducer``: ``send`` is used).
        policy: the transport's retry policy; ``policies`` overrides it per handler.
        dlq_suffix: the dead-letter topic is ``<topic><dlq_suffix>`` unless the
            handler's policy names one.
        topics: creates dead-letter topics before the first write (``None``: never).
        retried: told before each retry of a handler.
        gave_up: told when a record is given up (dead-lettered or dropped).
        producing: runs retries of handlers that produce, and gives the producer of
            dead letters (in exactly-once mode, the partition's transaction).
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        producer: Any,
        *,
        policy: RetryPolicy,
        policies: Mapping[MessageHandler, RetryPolicy] | None = None,
        dlq_suffix: str = ".dlq",
        topics: TopicCreator | None = None,
        retried: Callable[[MessageHandler], None] = _ignore,
        gave_up: Callable[[MessageHandler], None] = _ignore,
        producing: Producing | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._producer = producer
        self.policy = policy
        self._policies = dict(policies or {})
        self.dlq_suffix = dlq_suffix
        self._topics = topics
        self._retried = retried
        self._gave_up = gave_up
        self.producing = producing

    def policy_for(self, handler: MessageHandler) -> RetryPolicy:
        """``handler``'s retry policy (its decorator's, else the transport's)."""
        return self._policies.get(handler, self.policy)

    async def recover(
        self, lane: Lane, inbound: Inbound, handler: MessageHandler, exc: Exception
    ) -> bool:
        """Retry ``handler`` on ``inbound`` (a record, its payload decoded for this
        handler) with backoff, then dead-letter the record.

        Returns:
            False if the lane closed first (the record stays unfinished).
        """
        record = inbound.raw
        policy = self.policy_for(handler)
        attempts = 1
        if not is_poison(exc):
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
                self._retried(handler)
                try:
                    if self.producing is None:
                        await self._dispatcher.call(handler, inbound)
                    else:
                        await self.producing.caller(handler)(handler, inbound)
                    return True
                except Exception as again:
                    exc = again
                    if is_poison(again):
                        break
        return await self.dead_letter(lane, record, handler, exc, attempts, policy)

    async def dead_letter(
        self,
        lane: Lane,
        record: Any,
        handler: MessageHandler,
        exc: Exception,
        attempts: int,
        policy: RetryPolicy,
    ) -> bool:
        """Write ``record`` to its dead-letter topic, retrying with backoff while the
        broker's error is retriable.

        Returns:
            False if the lane closed first (the record stays unfinished).
        """
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
        self._gave_up(handler)
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
        initial = max(policy.retry_backoff, _MIN_DEAD_LETTER_WAIT)
        backoff = Backoff(initial, max(policy.retry_backoff_max, initial), jitter=policy.jitter)
        failures = 0
        while True:
            try:
                if self._topics is not None:
                    with contextlib.suppress(TransportError):
                        await self._topics.ensure([topic])
                # aiokafka refuses a record without key and value; Kafka does not.
                key = b"" if record.key is None and record.value is None else record.key
                producer = self._producer
                if self.producing is not None:
                    producer = await self.producing.outputs.producer(lane.tp)
                ack = await producer.send(topic, record.value, key=key, headers=headers)
                await ack
                return True
            except KafkaError as err:
                if self.producing is not None and self.producing.outputs.transactional:
                    raise  # the transaction cannot commit now: the batch is aborted
                if not err.retriable:
                    logger.error("Cannot dead-letter %s@%d: %r; dropped", topic, record.offset, err)
                    return True
                logger.warning("Dead-lettering to %s failed (%r); retrying", topic, err)
            failures += 1
            if not await lane.sleep(backoff.delay(failures)):
                return False

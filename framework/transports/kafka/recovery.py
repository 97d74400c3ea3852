"""Retries with backoff and dead-lettering of records whose handler keeps failing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from framework.exceptions import TransportError
from framework.messaging.router import MessageHandler
from framework.transports.base import TransportHost
from framework.transports.kafka.admin import TopicCreator
from framework.transports.kafka.context import KafkaContext
from framework.transports.kafka.lanes import Lane
from framework.transports.kafka.retry import RetryPolicy, is_poison
from framework.transports.kafka.wire import dead_letter_headers, payload

logger = logging.getLogger("framework.kafka")


class Recovery:
    """``KafkaTransport``'s answer to a failed handler: retry, then dead-letter."""

    policy: RetryPolicy
    dlq_suffix: str
    create_topics: bool
    host: TransportHost  # KafkaTransport's: events name self (the transport) as their source
    _producer: Any
    _topics: TopicCreator | None
    _policies: dict[MessageHandler, RetryPolicy]
    _decoders: dict[MessageHandler, Callable[[bytes | None], Any]]

    async def _recover(
        self,
        lane: Lane,
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
                self.host.events.retried(self, handler)  # type: ignore[arg-type]
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
        lane: Lane,
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
        self.host.events.dead_lettered(self, handler)  # type: ignore[arg-type]
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

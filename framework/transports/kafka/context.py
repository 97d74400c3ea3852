"""``KafkaContext``: what a handler can know about the Kafka record in hand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from framework.exceptions import TransportError
from framework.messaging.context import MessageContext
from framework.transports.kafka._produce import INPUT_KEY, Collected
from framework.transports.kafka.wire import decode_headers


class KafkaContext(MessageContext):
    """The record a handler is handling. Built only for handlers that ask for one.

    Attributes:
        topic: the record's topic (also ``pattern``).
        partition: its partition.
        offset: its offset.
        key: the record key, as bytes (``None`` when absent).
        headers: header values decoded as NestJS does: text, JSON for values starting
            with ``{`` or ``[``, bytes for binary values.
        timestamp: the record timestamp in milliseconds since the epoch.
        raw: the aiokafka ``ConsumerRecord``.
    """

    __slots__ = ("key", "offset", "outputs", "partition", "timestamp", "topic")

    def __init__(self, record: Any) -> None:
        headers = record.headers
        super().__init__(record.topic, "kafka", decode_headers(headers) if headers else {}, record)
        self.topic: str = record.topic
        self.partition: int = record.partition
        self.offset: int = record.offset
        self.key: bytes | None = record.key
        self.timestamp: int = record.timestamp
        self.outputs: Collected | None = None

    def send(
        self,
        topic: str,
        value: Any,
        *,
        key: str | bytes | None = INPUT_KEY,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> None:
        """Produce a record to ``topic`` once this handler call succeeds.

        Nothing leaves before the handler returns: a call that raises (and is retried,
        or dead-lettered) produces nothing. The input record's offset is committed only
        after the broker acknowledged what the call produced, and with
        ``KafkaTransport(exactly_once=True)`` both happen in one transaction.

        Args:
            topic: the topic to produce to (it must exist, or the broker create it).
            value: the value, encoded as every Kafka value (bytes and str as they are,
                the rest as JSON, ``None`` as a null value).
            key: ``str`` or ``bytes``, ``None`` for no key; by default the key of the
                record in hand (so outputs stay on the input's partition key).
            headers: header names to ``str`` or ``bytes`` values.

        Raises:
            TransportError: not called from an event handler that takes a
                ``KafkaContext`` parameter (request handlers and interceptors cannot
                produce), or the call produced more than the transport's ``max_outputs``.
            pydantic_core.PydanticSerializationError: ``value`` cannot be encoded.
        """
        outputs = self.outputs
        if outputs is None:
            raise TransportError(
                "KafkaContext.send works inside a Kafka event handler that takes a "
                "KafkaContext parameter, while it runs (a request's result is its reply)"
            )
        outputs.add(topic, value, key, headers)

    def __repr__(self) -> str:
        return (
            f"KafkaContext(topic={self.topic!r}, partition={self.partition}, offset={self.offset})"
        )

"""``KafkaContext``: what a handler can know about the Kafka record in hand."""

from __future__ import annotations

from typing import Any

from framework.messaging.context import MessageContext
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

    __slots__ = ("key", "offset", "partition", "timestamp", "topic")

    def __init__(self, record: Any) -> None:
        headers = record.headers
        super().__init__(record.topic, "kafka", decode_headers(headers) if headers else {}, record)
        self.topic: str = record.topic
        self.partition: int = record.partition
        self.offset: int = record.offset
        self.key: bytes | None = record.key
        self.timestamp: int = record.timestamp

    def __repr__(self) -> str:
        return (
            f"KafkaContext(topic={self.topic!r}, partition={self.partition}, offset={self.offset})"
        )

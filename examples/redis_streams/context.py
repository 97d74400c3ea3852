"""``RedisStreamsContext``: what a handler can know about the stream entry in hand."""

from __future__ import annotations

from typing import Any

from framework.transports import MessageContext

from .wire import NAME


class RedisStreamsContext(MessageContext):
    """The entry a handler is handling; built only for handlers that ask for one.

    Attributes:
        stream: the stream key the entry was read from.
        entry_id: the entry's id (``"<ms>-<seq>"``).
        key: the key the sender gave ``emit``, as bytes (``None`` when absent).
        deliveries: how many times the group delivered this entry (1 the first time;
            more after a failure or a consumer crash).
        headers: the sender's headers.
        raw: the entry's fields, ``{bytes: bytes}``.
    """

    __slots__ = ("deliveries", "entry_id", "key", "stream")

    def __init__(
        self,
        pattern: str,
        stream: str,
        entry_id: str,
        fields: dict[bytes, bytes],
        headers: dict[str, Any],
        key: bytes | None,
        deliveries: int,
    ) -> None:
        super().__init__(pattern, NAME, headers, fields)
        self.stream = stream
        self.entry_id = entry_id
        self.key = key
        self.deliveries = deliveries

    def __repr__(self) -> str:
        return f"RedisStreamsContext(stream={self.stream!r}, entry_id={self.entry_id!r})"

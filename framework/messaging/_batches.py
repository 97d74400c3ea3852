"""Events gathered into batches for ``@event_pattern(batch=True)`` handlers.

A transport that batches (memory, Kafka) hands each event for a batch handler to a
``Batcher``: the event is validated on its own (a bad one is reported through
``on_invalid`` and stays out of the batch), and the batch is handled once it holds
``max_batch`` values, or when the transport flushes it: when ``max_wait`` has passed
since its first event (``due``/``flush_due``), or at the end of what the transport has in
hand (``flush_all``). Handling failures are reported through ``on_failure``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from framework.messaging.context import MessageContext
from framework.messaging.router import MessageHandler

Report = Callable[[MessageHandler, list[Any], Exception], Awaitable[None]]
"""``(handler, what failed: the inbound messages, the error)``."""

ContextOf = Callable[[Any], MessageContext]


class _Pending:
    __slots__ = ("ctx", "deadline", "messages", "values")

    def __init__(self, deadline: float, ctx: MessageContext | None) -> None:
        self.deadline = deadline
        self.ctx = ctx
        self.values: list[Any] = []
        self.messages: list[Any] = []


class Batcher:
    """The open batches of one consumer (a memory worker, a Kafka lane).

    Args:
        context: the handler context of a message (``Dispatcher.context``); a batch's
            pipeline sees its first message's.
        on_invalid: told of a message that failed validation.
        on_failure: told when a batch handler raised (with every message of the batch).
    """

    __slots__ = ("_context", "_on_failure", "_on_invalid", "_pending")

    def __init__(self, context: ContextOf, on_invalid: Report, on_failure: Report) -> None:
        self._context = context
        self._on_invalid = on_invalid
        self._on_failure = on_failure
        self._pending: dict[MessageHandler, _Pending] = {}

    def __len__(self) -> int:
        """Messages waiting in open batches."""
        return sum(len(p.values) for p in self._pending.values())

    async def add(self, handler: MessageHandler, message: Any, payload: Any) -> None:
        """Validate ``payload`` (``message`` is the transport's inbound message, kept for
        reports) into ``handler``'s open batch; handle the batch when it is full."""
        assert handler.batch is not None and handler.validate_item is not None
        try:
            value = handler.validate_item(payload)
        except Exception as exc:
            await self._on_invalid(handler, [message], exc)
            return
        pending = self._pending.get(handler)
        if pending is None:
            ctx = self._context(message) if handler.needs_context else None
            pending = self._pending[handler] = _Pending(
                time.monotonic() + handler.batch.max_wait, ctx
            )
        pending.values.append(value)
        pending.messages.append(message)
        if len(pending.values) >= handler.batch.max_size:
            await self._flush(handler)

    def due(self) -> float | None:
        """Seconds until the next open batch is due (0 if one is), ``None`` if none is
        open."""
        if not self._pending:
            return None
        soonest = min(p.deadline for p in self._pending.values())
        return max(0.0, soonest - time.monotonic())

    async def flush_due(self) -> None:
        """Handle the batches whose ``max_wait`` has passed."""
        now = time.monotonic()
        for handler in [h for h, p in self._pending.items() if p.deadline <= now]:
            await self._flush(handler)

    async def flush_all(self) -> None:
        """Handle every open batch."""
        for handler in list(self._pending):
            await self._flush(handler)

    async def _flush(self, handler: MessageHandler) -> None:
        pending = self._pending.pop(handler, None)
        if pending is None:
            return
        assert handler.call_batch is not None
        try:
            await handler.call_batch(pending.values, pending.ctx)
        except Exception as exc:
            await self._on_failure(handler, pending.messages, exc)

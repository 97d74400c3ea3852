"""Inbound streams: a handler takes what arrives on a pattern as a stream.

An ``@event_pattern`` handler whose payload parameter is an ``AsyncIterator[T]`` (or, with
the ``rx`` extra, a ReactiveX ``Observable[T]``) is called once per stream rather than
once per message, and pulls the messages, each validated as a ``T``::

    @event_pattern("ticks")
    async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None:
        async for window in tumbling(ticks, seconds=5):
            await self.store.add(window.items)

The rule that makes Kafka's at-least-once hold through operators: **an item is done
when the handler pulls the next one** (or returns, or its stream ends), and an item that
an operator of this module holds in a buffer is done only once the operator's output that
contains it was handled (the handler pulled the operator's next output). Done items are
what a transport may acknowledge (Kafka commits their offsets).

``InboundStream`` is what the handler iterates; transports feed it (``put``, ``skip``,
``end``) and hear which items are done (``on_done``). ``batched`` and ``tumbling`` are the
operators that hold; an operator of your own that keeps items across pulls takes a
``hold()`` on the stream the same way (see ``batched``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from framework import exceptions

__all__ = ["DEFAULT_BUFFER", "Hold", "InboundStream", "Window", "batched", "tumbling"]

_T = TypeVar("_T")
_U = TypeVar("_U")

DEFAULT_BUFFER = 100
"""Validated items waiting for the handler to pull them, by default."""

_REPORT_EVERY = 64
"""Items pulled past, at most, before they are reported done while the stream flows."""

DoneHook = Callable[[Any, int], None]
"""``(token, count)``: every item fed up to the one ``token`` was given for (and
``count`` of them since the last call, skipped ones included) is done."""


class Hold:
    """Keeps the items of a stream from ``position`` on from being done (an operator's
    buffer). ``release()`` when the output holding them was handled."""

    __slots__ = ("_stream", "position")

    def __init__(self, stream: InboundStream[Any], position: int) -> None:
        self._stream = stream
        self.position = position

    def move(self, position: int) -> None:
        """Hold only the items from ``position`` (a sequence number) on."""
        if position > self.position:
            self.position = position
            self._stream._advance()

    def release(self) -> None:
        """The held items are no longer held (idempotent)."""
        stream = self._stream
        if self in stream._holds:
            stream._holds.remove(self)
            stream._advance()


class InboundStream(Generic[_T]):
    """The items arriving on one pattern for one handler, in order, as an async iterator.

    One per (handler, Kafka partition), per handler on memory, per (handler,
    connection) on WebSocket and Socket.IO. At most ``size`` items wait for the handler;
    ``put`` waits while they do, which is how a slow handler slows its transport.

    Args:
        size: items buffered ahead of the handler (at least 1).
        on_done: told, in order, of items that are done (see ``DoneHook``).
    """

    __slots__ = (
        "_current",
        "_current_token",
        "_discarded",
        "_ended",
        "_getter",
        "_holds",
        "_items",
        "_low",
        "_next_seq",
        "_on_done",
        "_pending",
        "_putter",
        "_released",
        "_reported",
        "size",
    )

    def __init__(self, size: int = DEFAULT_BUFFER, *, on_done: DoneHook | None = None) -> None:
        if size < 1:
            raise exceptions.ConfigurationError(
                f"an inbound stream buffers at least 1 item, not {size}"
            )
        self.size = size
        self._low = size // 2
        self._on_done = on_done
        self._items: deque[tuple[int, _T, Any]] = deque()  # (seq, value, token), not handed
        # [seq, token to report, count, the item's own token], not yet done
        self._pending: deque[list[Any]] = deque()
        self._holds: list[Hold] = []
        self._next_seq = 0
        self._current = -1  # the seq last handed out
        self._current_token: Any = None
        self._released = 0  # items before this seq were pulled past
        self._reported = 0  # items before this seq were reported done
        self._ended = False
        self._discarded = False
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"InboundStream(waiting={len(self._items)}, undone={self.undone})"

    # -- the transport's side ---------------------------------------------------------

    def offer(self, value: _T, token: Any = None) -> bool:
        """``put`` without waiting: ``False`` when the buffer is full or the stream
        ended (then ``put`` says which)."""
        if len(self._items) >= self.size or self._ended:
            return False
        seq = self._next_seq
        self._next_seq = seq + 1
        self._items.append((seq, value, token))
        self._pending.append([seq, token, 1, token])
        _wake(self._getter)
        return True

    async def put(self, value: _T, token: Any = None) -> bool:
        """Add one validated item (``token``: what ``on_done`` reports it by, e.g. the
        Kafka record); waits while ``size`` items wait. ``False`` if the stream ended
        (the item was not taken)."""
        while len(self._items) >= self.size and not self._ended:
            putter = self._putter = asyncio.get_running_loop().create_future()
            try:
                await putter
            finally:
                self._putter = None
        return self.offer(value, token)

    def skip(self, token: Any = None) -> None:
        """A message that is done without entering the stream (it failed validation and
        took the transport's error path): it is reported with the item before it."""
        if self._pending:
            last = self._pending[-1]
            last[1] = token
            last[2] += 1
        elif self._on_done is not None:
            self._on_done(token, 1)

    def end(self) -> None:
        """No more items: the handler gets what waits, then the end of the iteration."""
        self._ended = True
        _wake(self._getter)
        _wake(self._putter)

    def discard(self) -> None:
        """The handler failed: end now, drop what waits, and report nothing more as
        done (not even what the failed handler's operators release as they close): a
        transport that redelivers replays every item not done yet."""
        self._advance()  # what it pulled past, and no hold keeps, was done
        self._discarded = True
        self._items.clear()
        self.end()

    def finish(self) -> None:
        """The handler returned: what it pulled is done (its holds went with it)."""
        self._holds.clear()
        self._released = self._current + 1
        self._advance()

    def close(self) -> None:
        """End now and count every item fed as done, handled or not: for a transport
        that does not redeliver (what waited is dropped)."""
        self._items.clear()
        self._holds.clear()
        self._current = self._next_seq - 1
        self.end()
        self.finish()

    @property
    def ended(self) -> bool:
        """``end`` or ``discard`` was called."""
        return self._ended

    @property
    def waiting(self) -> int:
        """Items not yet handed to the handler."""
        return len(self._items)

    @property
    def undone(self) -> int:
        """Items fed and not yet done (waiting, in the handler's hands, or held)."""
        return self._next_seq - self._reported

    @property
    def current(self) -> Any:
        """The token of the item last handed to the handler (``None`` before the first)."""
        return self._current_token

    @property
    def oldest(self) -> Any:
        """The token of the oldest item not done yet (``None`` when all are)."""
        return self._pending[0][3] if self._pending else None

    @property
    def handed(self) -> int:
        """Items handed to the handler so far."""
        return self._current + 1

    # -- the handler's side -----------------------------------------------------------

    def __aiter__(self) -> InboundStream[_T]:
        return self

    async def __anext__(self) -> _T:
        found, value = await self.pull(None)
        if not found:
            raise StopAsyncIteration
        item: _T = value
        return item

    async def pull(self, timeout: float | None) -> tuple[bool, Any]:
        """The next item as ``(True, item)``; ``(False, None)`` at the end of the stream or
        after ``timeout`` seconds without one (``ended`` tells which). Pulling makes the
        item pulled before done, unless a hold keeps it."""
        if self._released <= self._current:
            self._released = self._current + 1
            # Reported in runs (and whenever the stream waits or ends): a report per
            # item would cost more than handing the item over.
            # (Holds report themselves as they move.)
            if not self._holds and self._released - self._reported >= _REPORT_EVERY:
                self._advance()
        items = self._items
        if not items:
            self._advance()
        if not items and not self._ended:
            getter = self._getter = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await getter
                else:
                    await asyncio.wait({getter}, timeout=timeout)
            finally:
                self._getter = None
                getter.cancel()
        if not items:
            return False, None
        seq, value, token = items.popleft()
        self._current = seq
        self._current_token = token
        if self._putter is not None and len(items) <= self._low:
            # Room for half a buffer at once: waking a full producer for every item
            # pulled would cost a task switch per item.
            _wake(self._putter)
        return True, value

    def take(self, limit: int) -> list[_T]:
        """Up to ``limit`` of the items waiting, without waiting: what as many ``pull``
        calls would give (an operator filling a batch from what is buffered)."""
        items = self._items
        if not items or limit < 1:
            return []
        if self._released <= self._current:
            self._released = self._current + 1
        taken: list[_T] = []
        seq, value, token = items.popleft()
        taken.append(value)
        while items and len(taken) < limit:
            seq, value, token = items.popleft()
            taken.append(value)
        self._released = max(self._released, seq)  # all but the last are pulled past
        self._current = seq
        self._current_token = token
        if self._putter is not None and len(items) <= self._low:
            _wake(self._putter)
        return taken

    def hold(self, *, inherit: bool = False) -> Hold:
        """Keep every item pulled from now on from being done until the hold is
        released: call it before pulling what you will buffer (what you pulled before is
        then pulled past).

        Args:
            inherit: also keep what other holds keep now: for an operator whose source
                (another operator) is midway through its next output, which will
                contain items pulled before this hold.
        """
        if self._released <= self._current:
            self._released = self._current + 1
            self._advance()
        position = self._current + 1
        if inherit and self._holds:
            position = min(position, min(h.position for h in self._holds))
        found = Hold(self, position)
        self._holds.append(found)
        return found

    # -- done items -------------------------------------------------------------------

    def _advance(self) -> None:
        if self._discarded:
            return  # what was undone stays undone
        limit = self._released
        if self._holds:
            limit = min(limit, min(h.position for h in self._holds))
        if limit <= self._reported:
            return
        pending = self._pending
        token: Any = None
        count = 0
        while pending and pending[0][0] < limit:
            _, token, n, _ = pending.popleft()
            count += n
        self._reported = limit
        if count and self._on_done is not None:
            self._on_done(token, count)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


# -- operators that hold -------------------------------------------------------------


def _root(source: AsyncIterable[Any]) -> InboundStream[Any] | None:
    if isinstance(source, InboundStream):
        return source
    root = getattr(source, "root", None)
    return root if isinstance(root, InboundStream) else None


class _Puller(Generic[_T]):
    """``pull(timeout)`` over any async iterator: an ``InboundStream``'s own, or a
    pending ``anext`` kept across timeouts (never cancelled: that would lose an item)."""

    __slots__ = ("_iterator", "_pending", "ended")

    @property
    def midway(self) -> bool:
        """A pull timed out and is still pending: the source (an operator) may already
        hold items of what it hands out next."""
        return self._pending is not None

    def __init__(self, source: AsyncIterable[_T]) -> None:
        self._iterator = aiter(source)
        self._pending: asyncio.Future[_T] | None = None
        self.ended = False

    async def pull(self, timeout: float | None) -> tuple[bool, Any]:
        iterator = self._iterator
        if isinstance(iterator, InboundStream):
            found, value = await iterator.pull(timeout)
            self.ended = not found and iterator.ended
            return found, value
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(iterator))
        pending = self._pending
        if timeout is not None:
            await asyncio.wait({pending}, timeout=timeout)
            if not pending.done():
                return False, None
        self._pending = None
        try:
            return True, await pending
        except StopAsyncIteration:
            self.ended = True
            return False, None

    def take(self, limit: int) -> list[_T]:
        """What waits in an ``InboundStream`` source, up to ``limit`` items, at once."""
        iterator = self._iterator
        return iterator.take(limit) if isinstance(iterator, InboundStream) else []

    async def aclose(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        closer = getattr(self._iterator, "aclose", None)
        if closer is not None and not isinstance(self._iterator, InboundStream):
            await closer()


class _Operated(Generic[_U]):
    """An operator's output: an async iterator that knows the stream under it (so an
    operator over it holds on that stream too)."""

    __slots__ = ("_agen", "root")

    def __init__(self, agen: AsyncIterator[_U], root: InboundStream[Any] | None) -> None:
        self._agen = agen
        self.root = root

    def __aiter__(self) -> _Operated[_U]:
        return self

    def __anext__(self) -> Any:
        return self._agen.__anext__()

    async def aclose(self) -> None:
        closer = getattr(self._agen, "aclose", None)
        if closer is not None:
            await closer()


def batched(source: AsyncIterable[_T], max_size: int, max_wait: float) -> AsyncIterator[list[_T]]:
    """Lists of up to ``max_size`` items, each handed out ``max_wait`` seconds after its
    first item at the latest (at the end of the stream, what is in hand). The items of a
    list are done once the handler pulls the next list.

    Raises:
        ConfigurationError: ``max_size`` below 1 or ``max_wait`` negative.
    """
    if max_size < 1 or max_wait < 0:
        raise exceptions.ConfigurationError(
            "batched() takes max_size >= 1 and max_wait >= 0 seconds"
        )

    async def gather(puller: _Puller[_T], first: _T) -> list[_T]:
        batch = [first, *puller.take(max_size - 1)]
        deadline = time.monotonic() + max_wait
        while len(batch) < max_size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            found, item = await puller.pull(left)
            if not found:
                break
            batch.append(item)
            batch.extend(puller.take(max_size - len(batch)))
        return batch

    return _holding(source, gather)


def _holding(
    source: AsyncIterable[_T], gather: Callable[[_Puller[_T], _T], Awaitable[_U]]
) -> _Operated[_U]:
    """An operator that buffers: ``gather(puller, first)`` builds each output from its
    first item and what else it pulls; the items are held until the next output is
    asked for."""
    root = _root(source)
    return _Operated(_held_outputs(source, root, gather), root)


async def _held_outputs(
    source: AsyncIterable[_T],
    root: InboundStream[Any] | None,
    gather: Callable[[_Puller[_T], _T], Awaitable[_U]],
) -> AsyncIterator[_U]:
    puller = _Puller(source)
    hold: Hold | None = None
    try:
        while not puller.ended:
            hold = root.hold(inherit=puller.midway) if root is not None else None
            found, first = await puller.pull(None)
            if not found:
                break
            yield await gather(puller, first)  # its items stay held until the next pull
            if hold is not None:
                hold.release()
    finally:
        if hold is not None:
            hold.release()
        await puller.aclose()


@dataclass(slots=True)
class Window(Generic[_T]):
    """The items that arrived in ``[start, end)`` (Unix time, seconds), in order."""

    start: float
    end: float
    items: list[_T] = field(default_factory=list)


def tumbling(
    source: AsyncIterable[_T], seconds: float, *, max_size: int = 10_000
) -> AsyncIterator[Window[_T]]:
    """Tumbling processing-time windows: every ``seconds`` (aligned on the clock:
    ``[k*seconds, (k+1)*seconds)``), the window of the items that arrived in it, handed
    out when it closes; windows without items are skipped. At the end of the stream
    (a Kafka partition revoked, the app stopping) the open window is handed out as it
    is. A window's items are done once the handler pulls the next window.

    Args:
        source: an ``InboundStream`` (or an operator over one) or any async iterable.
        seconds: the window length.
        max_size: items one window holds at most; a window that fills closes early
            (its ``end`` is then the time it closed), so memory stays bounded.

    Raises:
        ConfigurationError: ``seconds`` not positive or ``max_size`` below 1.
    """
    if seconds <= 0 or max_size < 1:
        raise exceptions.ConfigurationError("tumbling() takes seconds > 0 and max_size >= 1")

    async def gather(puller: _Puller[_T], first: _T) -> Window[_T]:
        now = time.time()
        start = now - now % seconds
        window = Window(start, start + seconds, [first, *puller.take(max_size - 1)])
        while len(window.items) < max_size:
            left = window.end - time.time()
            if left <= 0:
                break
            found, item = await puller.pull(left)
            if not found:
                break
            window.items.append(item)
            window.items.extend(puller.take(max_size - len(window.items)))
        else:
            window.end = time.time()
        return window

    return _holding(source, gather)

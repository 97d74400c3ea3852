"""ReactiveX Observables as streams, both ways (the optional ``framework[rx]`` extra).

A handler may return an Observable (``reactivex``) wherever it may return an async
iterator: each item becomes a stream item, completion ends the stream, ``on_error`` becomes
the transport's error reply. Nothing needs importing for that: the stream driver knows an
Observable when it sees one (``streams._is_observable``) and bridges it through
``ObservableStream``. Import this module to choose the bridge's buffer and overflow policy
for one stream (``from_observable``) or to turn an async iterator into an Observable
(``to_observable``, what ``ClientProxy.observe`` returns).

Rx pushes and our transports pull, so the bridge holds what the Observable emitted ahead
of the receiver in a bounded buffer. When it is full, ``overflow`` decides:

- ``"fail"`` (the default): the stream ends with ``framework.StreamOverflowError`` (the caller gets
  its message as the error reply) and the subscription is disposed. Nothing is lost
  silently.
- ``"drop_oldest"``: the oldest waiting item is dropped; the receiver sees the newest
  ``buffer_size`` items.
- ``"keep_latest"``: the newest waiting item is replaced; the receiver gets the items
  ahead of it in order and, last, the most recent value (``buffer_size=1`` is
  ``onBackpressureLatest``).

This module imports ``reactivex``; the rest of the framework never does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import typing
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

try:
    import reactivex
    from reactivex.abc import DisposableBase, ObserverBase, SchedulerBase
    from reactivex.disposable import Disposable
    from reactivex.scheduler.eventloop import AsyncIOScheduler
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "framework.rx needs the reactivex package: pip install 'framework[rx]'"
    ) from exc

from framework import exceptions

if typing.TYPE_CHECKING:
    from framework.inbound import InboundStream

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "ObservableStream",
    "Overflow",
    "from_observable",
    "run_observable_input",
    "to_observable",
]

Overflow = Literal["fail", "drop_oldest", "keep_latest"]
"""What the bridge does with an item that finds its buffer full (see the module doc)."""

DEFAULT_BUFFER_SIZE = 1000
"""Items an Observable may emit ahead of its receiver, by default."""

_POLICIES = ("fail", "drop_oldest", "keep_latest")

logger = logging.getLogger("framework.messaging")


class ObservableStream:
    """An Observable as an async iterator, through a bounded buffer.

    Subscribes on the first ``__anext__`` (a stream never iterated never subscribes), with
    an ``AsyncIOScheduler`` of the running loop as the default scheduler, so time-based
    operators (``interval``, ``debounce``...) run on the loop rather than on threads of
    their own. Items may also be emitted from other threads: the buffer is guarded by a
    lock. ``aclose`` (the driver calls it whenever the stream ends early: the client
    cancelled or left, a timeout, shutdown) disposes the subscription.

    Args:
        observable: the source.
        buffer_size: items that may wait for the receiver (at least 1).
        overflow: what happens to an item that finds the buffer full.
    """

    __slots__ = (
        "_done",
        "_error",
        "_lock",
        "_loop",
        "_overflow",
        "_queue",
        "_size",
        "_source",
        "_subscription",
        "_thread",
        "_waiter",
    )

    def __init__(
        self,
        observable: reactivex.Observable[Any],
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        overflow: Overflow = "fail",
    ) -> None:
        if buffer_size < 1:
            raise exceptions.ConfigurationError("buffer_size must be at least 1 item")
        if overflow not in _POLICIES:
            raise exceptions.ConfigurationError(
                f"overflow must be one of {_POLICIES}, not {overflow!r}"
            )
        self._source = observable
        self._size = buffer_size
        self._overflow: Overflow = overflow
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._done = False  # no more items will come (completed, failed, or closed)
        self._error: BaseException | None = None
        self._subscription: DisposableBase | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0

    @property
    def buffer_size(self) -> int:
        return self._size

    @property
    def overflow(self) -> Overflow:
        return self._overflow

    def __aiter__(self) -> ObservableStream:
        return self

    async def __anext__(self) -> Any:
        if self._loop is None and not self._done:  # (closed before it began: never)
            self._subscribe()
        queue = self._queue
        while True:
            with self._lock:
                if queue:
                    return queue.popleft()
                if self._done:
                    error = self._error
                    if error is not None:
                        self._error = None
                        raise error
                    raise StopAsyncIteration
                assert self._loop is not None
                waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def aclose(self) -> None:
        """Stop: dispose the subscription and drop what waits (idempotent)."""
        with self._lock:
            self._done = True
            self._error = None
            self._queue.clear()
        self._dispose()

    # -- the Observer side (may run on any thread) -------------------------------------

    def _subscribe(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        subscription = self._source.subscribe(
            self._on_next,
            self._on_error,
            self._on_completed,
            scheduler=AsyncIOScheduler(loop),
        )
        with self._lock:
            self._subscription = subscription
            finished = self._done
        if finished:  # it failed or overflowed while subscribing
            self._dispose()

    def _on_next(self, item: Any) -> None:
        failed = False
        with self._lock:
            if self._done:
                return
            queue = self._queue
            if len(queue) < self._size:
                queue.append(item)
            elif self._overflow == "drop_oldest":
                queue.popleft()
                queue.append(item)
            elif self._overflow == "keep_latest":
                queue[-1] = item
            else:
                self._done = failed = True
                self._error = exceptions.StreamOverflowError(self._size)
        if failed:
            logger.warning(
                "An Observable got %d items ahead of its receiver; stream failed "
                "(from_observable(..., buffer_size=, overflow=) sets the policy)",
                self._size,
            )
            self._dispose()  # a synchronous source stops emitting at once
        self._wake()

    def _on_error(self, error: Exception) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            self._error = error
        self._wake()

    def _on_completed(self) -> None:
        with self._lock:
            self._done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is None:
            return
        if threading.get_ident() == self._thread:
            if not waiter.done():
                waiter.set_result(None)
        else:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(_release, waiter)

    def _dispose(self) -> None:
        with self._lock:
            subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def from_observable(
    observable: reactivex.Observable[Any],
    *,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    overflow: Overflow = "fail",
) -> ObservableStream:
    """Return this from a handler to stream ``observable`` with your own bridge buffer
    (``buffer_size`` items) and overflow policy (``"fail"``, ``"drop_oldest"`` or
    ``"keep_latest"``). A bare Observable gets the defaults: 1000 items, ``"fail"``."""
    return ObservableStream(observable, buffer_size=buffer_size, overflow=overflow)


def to_observable(open_stream: Callable[[], AsyncIterator[Any]]) -> reactivex.Observable[Any]:
    """A cold Observable over async iterators: every subscription calls ``open_stream``
    and pushes what it yields (in a task of the running loop: subscribe from the loop's
    thread); disposing cancels the task, which closes the iterator (a client stream then
    cancels its request)."""

    def subscribe(observer: ObserverBase[Any], scheduler: SchedulerBase | None = None) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "Subscribe to this Observable from a coroutine (it runs on the asyncio loop)"
            ) from None
        task = loop.create_task(_push(open_stream, observer))

        def dispose() -> None:
            task.cancel()

        return Disposable(dispose)

    return reactivex.create(subscribe)


async def _push(open_stream: Callable[[], AsyncIterator[Any]], observer: ObserverBase[Any]) -> None:
    try:
        async for item in open_stream():
            observer.on_next(item)
    except asyncio.CancelledError:
        raise  # disposed: an Observer hears nothing more
    except Exception as exc:
        observer.on_error(exc)
    else:
        observer.on_completed()


async def run_observable_input(
    call: Callable[[Any, Any], Any], stream: InboundStream[Any], ctx: Any
) -> None:
    """Run a handler that takes its inbound stream as an Observable (``Observable[T]``).

    The handler gets a hot Observable of the stream's items (subscribe once) and returns
    its pipeline; this subscribes to that pipeline and waits for it to complete (the
    stream ended) or fail (raised here). Items are pushed one at a time, the next once
    the pipeline took the one before, so a synchronous pipeline is paced by the stream.

    The at-least-once rule: every input pushed before the pipeline emits (inputs that
    caused the emission included) is done when it emits; all inputs are done when it
    completes. That holds for operators that emit in input order and whose emission
    accounts for everything before it (map, filter, scan, buffer/window by count or time,
    take, reduce); an operator that delays or reorders items (``delay``, ``observe_on``
    another scheduler, ``flat_map`` over async inner sources) must not be used to do the
    work, or the inputs it still holds count as done.
    """
    loop = asyncio.get_running_loop()
    hold = stream.hold()  # nothing pushed is done until the pipeline says so
    pushed = 0  # inputs pushed into the pipeline so far
    pusher: asyncio.Task[None] | None = None

    async def push(observer: ObserverBase[Any]) -> None:
        nonlocal pushed
        try:
            async for item in stream:
                pushed = stream.handed
                observer.on_next(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            observer.on_error(exc)
        else:
            observer.on_completed()

    def subscribe(observer: ObserverBase[Any], scheduler: SchedulerBase | None = None) -> Any:
        nonlocal pusher
        if pusher is not None:
            observer.on_error(
                exceptions.ConfigurationError("an inbound stream's Observable is subscribed once")
            )
            return Disposable()
        task = pusher = loop.create_task(push(observer))

        def dispose() -> None:
            task.cancel()

        return Disposable(dispose)

    result = await call(reactivex.create(subscribe), ctx)
    if not isinstance(result, reactivex.Observable):
        raise exceptions.ConfigurationError(
            "a handler taking an Observable returns its pipeline (an Observable): the "
            f"framework subscribes to it; got {type(result).__name__}"
        )
    finished: asyncio.Future[None] = loop.create_future()

    def emitted(_: Any) -> None:
        hold.move(pushed)

    def failed(error: Exception) -> None:
        if not finished.done():
            finished.set_exception(error)

    def completed() -> None:
        if not finished.done():
            finished.set_result(None)

    subscription = result.subscribe(emitted, failed, completed, scheduler=AsyncIOScheduler(loop))
    try:
        await finished
    finally:
        subscription.dispose()
        if pusher is not None and not pusher.done():
            pusher.cancel()
    hold.release()  # (not when it failed: what it held is not done)

"""The stream driver: the one place that knows what a streamed reply is and runs it.

A handler streams by returning an async iterator (an async generator, say). A transport
hands that result to ``drive`` with a ``Respond``, its three ways of writing: an item, the
end, an error. The driver pulls one item at a time and awaits the write before pulling
the next, so a slow receiver slows the producer instead of growing a buffer; it turns a
failure of the source, or an item that cannot be encoded, into one error write; and
whatever ends the stream (the end, an error, the receiver gone, cancellation of the
task running ``drive``) closes the source, so its ``finally`` blocks run.

This mirrors NestJS's ``Server.send(stream$, respond)``: each server supplies only how to
write. Other kinds of stream plug in through ``register_stream_kind``; ReactiveX
Observables are registered here, without importing ``reactivex``: a result can only be
an Observable once something imported it, so the test looks in ``sys.modules``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from framework.exceptions import RemoteError
from framework.messaging.codecs import encode
from framework.messaging.errors import error_payload

logger = logging.getLogger("framework.messaging")


class Respond(Protocol):
    """How a transport writes a streamed reply."""

    async def item(self, data: bytes) -> bool:
        """Write one item (its JSON); ``False`` when the receiver is gone (the driver
        stops and closes the source)."""

    async def end(self, last: bytes | None) -> None:
        """Write the end of the stream. ``last`` is the final item, held back to go
        with the end in one write when ``drive`` was given ``merge_last`` (Kafka marks
        the last record as the end); otherwise always ``None``."""

    async def error(self, payload: dict[str, Any]) -> None:
        """Write an error reply; the stream is over."""


Adapter = Callable[[Any], AsyncIterator[Any]]

_KINDS: list[tuple[Callable[[type], bool], Adapter]] = []
_BY_TYPE: dict[type, Adapter | None] = {}
_MAX_TYPES = 1000


def _async_iterable(cls: type) -> bool:
    return any("__aiter__" in vars(k) for k in cls.__mro__)


def register_stream_kind(test: Callable[[type], bool], adapter: Adapter) -> None:
    """Treat results whose type passes ``test`` as streams, iterated via ``adapter``
    (e.g. an Observable bridged to an async iterator). Later registrations win."""
    _KINDS.insert(0, (test, adapter))
    _BY_TYPE.clear()


def is_observable_type(cls: Any) -> bool:
    """Whether ``cls`` is a ReactiveX Observable class (``False`` unless ``reactivex`` was
    imported: nothing here imports it)."""
    rx_abc = sys.modules.get("reactivex.abc")
    return rx_abc is not None and isinstance(cls, type) and issubclass(cls, rx_abc.ObservableBase)


def _observable_stream(observable: Any) -> AsyncIterator[Any]:
    from framework.rx import ObservableStream  # only reached once reactivex is imported

    return ObservableStream(observable)


register_stream_kind(is_observable_type, _observable_stream)


def _adapter(cls: type) -> Adapter | None:
    # Cached per type: ``hasattr`` on a pydantic model goes through its ``__getattr__``
    # and costs microseconds when the attribute is missing.
    try:
        return _BY_TYPE[cls]
    except KeyError:
        pass
    found: Adapter | None = next((a for t, a in _KINDS if t(cls)), None)
    if found is None and _async_iterable(cls):
        found = aiter
    if len(_BY_TYPE) >= _MAX_TYPES:
        _BY_TYPE.clear()
    _BY_TYPE[cls] = found
    return found


def is_stream(value: Any) -> bool:
    """Whether a handler's result is a streamed reply."""
    return _adapter(value.__class__) is not None


def iterate(value: Any) -> AsyncIterator[Any]:
    """A stream result as an async iterator (``TypeError`` if it is not a stream)."""
    adapter = _adapter(value.__class__)
    if adapter is None:
        raise TypeError(f"{type(value).__name__} is not a stream")
    return adapter(value)


def map_items(result: Any, fn: Callable[[Any], Any]) -> Any:
    """``fn`` applied to every item of a streamed result (async iterator or Observable),
    or to a single result: what an interceptor returns to transform a handler's reply
    item by item without asking which kind it is (NestJS's ``next.handle().pipe(map(fn))``)::

        async def intercept(self, ctx, call_next):
            return map_items(await call_next(), lambda item: {"data": item})

    A stream comes back as an async iterator; closing it closes (or disposes) the
    handler's stream. ``fn`` is a plain function; an exception it raises ends the stream
    with an error reply, as one raised by the handler would.
    """
    if is_stream(result):
        return _mapped(iterate(result), fn)
    return fn(result)


async def _mapped(inner: AsyncIterator[Any], fn: Callable[[Any], Any]) -> AsyncIterator[Any]:
    try:
        async for item in inner:
            yield fn(item)
    finally:
        await close(inner)


async def close(source: Any) -> None:
    """Close a stream source that will not be iterated to its end (runs its cleanup)."""
    closer = getattr(source, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()


async def drive(
    source: Any,
    respond: Respond,
    *,
    where: str = "",
    encoder: Callable[[Any], bytes] = encode,
    merge_last: float | None = None,
) -> None:
    """Run a streamed reply into ``respond`` until it ends, fails or is cancelled.

    Args:
        source: the handler's stream result (see ``is_stream``).
        respond: the transport's writes.
        where: the handler's name, for the log line of an unexpected error.
        encoder: turns an item into the bytes ``respond.item`` takes.
        merge_last: seconds to wait for the next item before writing the one in hand,
            so that the last item can go with the end (``respond.end(last)``); ``None``
            writes every item at once and ends with ``respond.end(None)``.

    Cancelling the task that runs this closes the source and re-raises; nothing is
    written then (the caller knows why it cancelled).
    """
    iterator = iterate(source)
    try:
        if merge_last is None:
            async for item in iterator:
                if not await respond.item(encoder(item)):
                    return
            await respond.end(None)
        else:
            await _drive_merging(iterator, respond, encoder, merge_last)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        await respond.error(error_payload(exc, where=where))
    finally:
        await close(iterator)
        if iterator is not source:
            await close(source)


async def _drive_merging(
    iterator: AsyncIterator[Any],
    respond: Respond,
    encoder: Callable[[Any], bytes],
    wait: float,
) -> None:
    """Each item is written when the next one arrives, or after ``wait`` seconds; the
    item in hand when the source ends goes with the end."""
    try:
        held = encoder(await anext(iterator))
    except StopAsyncIteration:
        await respond.end(None)
        return
    while True:
        upcoming = asyncio.ensure_future(anext(iterator))
        sent = False
        try:
            done, _ = await asyncio.wait({upcoming}, timeout=wait)
            if not done:
                # A live stream: do not hold its item back any longer.
                sent = True
                if not await respond.item(held):
                    return
            following = await upcoming
        except StopAsyncIteration:
            await respond.end(None if sent else held)
            return
        except Exception:
            if not sent:
                await respond.item(held)  # it was produced: it goes before the error
            raise
        finally:
            if not upcoming.done():
                upcoming.cancel()
                # Let the generator leave its await before it is closed.
                with contextlib.suppress(BaseException):
                    await upcoming
        if not sent and not await respond.item(held):
            return
        held = encoder(following)


class Buffered:
    """A ``Respond`` that a reader pulls from, for clients that iterate a stream in
    their own task (the in-memory client). At most ``size`` items wait; the driver waits
    when they do, so a reader that stops reading stops the producer.

    ``next(timeout)`` returns the next item's JSON, ``None`` at the end, and raises
    ``RemoteError`` with the error reply when the stream failed.
    """

    def __init__(self, size: int = 16) -> None:
        self._queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue(size)

    async def item(self, data: bytes) -> bool:
        await self._queue.put((_ITEM, data))
        return True

    async def end(self, last: bytes | None) -> None:
        if last is not None:
            await self._queue.put((_ITEM, last))
        await self._queue.put((_END, None))

    async def error(self, payload: dict[str, Any]) -> None:
        await self._queue.put((_ERROR, payload))

    async def next(self) -> bytes | None:
        kind, value = await self._queue.get()
        if kind == _ERROR:
            raise RemoteError(value)
        data: bytes | None = value
        return data


_ITEM, _END, _ERROR = 0, 1, 2

"""One inbound message in, one outcome out: the handling every transport shares.

A transport decodes its wire into an ``Inbound`` and asks its ``Dispatcher``; what comes
back says what to write, and the transport only encodes and writes it::

    outcome = await dispatcher.request(inbound)       # or .event(...), .dispatch(...)
    match outcome:
        Reply(data=json_bytes, event=name)            one reply (``event`` from a WsResponse)
        Stream(source=...)                            streams.drive(source, respond)
        Failure(payload=error_dict)                   an error reply
        NOT_FOUND                                     no handler; NOT_FOUND.payload to reply
        Handled(count=n, failures=[(handler, exc)])   an event ran through n handlers

Nothing here does I/O or knows a transport: lookups (``route``) are plain synchronous
code, and the only awaits are the handlers themselves. Contexts are built once per
message and only when a handler (or its pipeline) asks for one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from framework.exceptions import PatternNotFoundError
from framework.messaging._batches import Batcher
from framework.messaging._cache import NameCache
from framework.messaging._feeds import Feeds, log_refusal
from framework.messaging.codecs import encode
from framework.messaging.context import MessageContext
from framework.messaging.errors import error_payload
from framework.messaging.responses import WsResponse
from framework.messaging.router import MessageHandler, Router
from framework.messaging.streams import drive, is_stream

logger = logging.getLogger("framework.messaging")


class Inbound(MessageContext):
    """One decoded inbound message; also its handlers' ``MessageContext`` unless the
    transport gives the dispatcher a ``context`` factory of its own (one object per
    message, not two).

    Attributes:
        pattern: the concrete pattern (a Kafka topic, a WS event name...).
        payload: what the handler's validator takes: JSON bytes, or a decoded value.
        headers: message headers; empty when none.
        raw: the transport's own message object (an aiokafka record, a WS frame dict).
        source: the connection it came from (a WS socket, an HTTP request), or ``None``.
        transport: set by the dispatcher when the message serves as its own context.
    """

    __slots__ = ("_context", "payload", "source")

    def __init__(
        self,
        pattern: str,
        payload: Any,
        headers: Mapping[str, Any] | None = None,
        raw: Any = None,
        source: Any = None,
    ) -> None:
        self.pattern = pattern
        self.payload = payload
        self.headers = _NO_HEADERS if headers is None else headers
        self.raw = raw
        self.source = source
        self.transport = ""
        self._context: MessageContext | None = None

    def __repr__(self) -> str:
        return f"Inbound(pattern={self.pattern!r})"


_NO_HEADERS: Mapping[str, Any] = MappingProxyType({})


ContextFactory = Callable[[Inbound], MessageContext]


class Route:
    """What serves one pattern on one dispatcher: a request handler and event handlers.

    Attributes:
        message: the ``@message_pattern`` handler, or ``None``.
        events: the ``@event_pattern`` handlers (an event with none of them runs the
            request handler and drops its reply, as NestJS does).
        prefer_events: an event handler matches more closely than the request handler
            (``orders.created`` against ``orders.*``): ``dispatch`` runs the events.
    """

    __slots__ = ("batched", "events", "message", "prefer_events")

    def __init__(
        self,
        message: MessageHandler | None,
        events: tuple[MessageHandler, ...],
        prefer_events: bool = False,
    ) -> None:
        self.message = message
        self.events = events
        self.prefer_events = prefer_events
        self.batched = any(h.batch is not None or h.call_stream is not None for h in events)
        """Some event handler takes batches (``@event_pattern(batch=True)``) or an
        inbound stream."""

    def __bool__(self) -> bool:
        return self.message is not None or bool(self.events)


class Reply:
    """A single reply: ``data`` is its JSON; ``event`` is set when the handler returned
    a ``WsResponse`` (the event name to reply under), else ``None``."""

    __slots__ = ("data", "event")

    def __init__(self, data: bytes, event: str | None = None) -> None:
        self.data = data
        self.event = event


class Stream:
    """A streamed reply: hand ``source`` to ``streams.drive`` (``handler`` names who
    produced it, for logs)."""

    __slots__ = ("handler", "source")

    def __init__(self, source: Any, handler: MessageHandler) -> None:
        self.source = source
        self.handler = handler


class Failure:
    """An error reply, shaped by ``errors.error_payload``; ``error`` is the exception it
    stands for (a transport with status codes maps it, as HTTP does), or ``None``."""

    __slots__ = ("error", "payload")

    def __init__(self, payload: dict[str, Any], error: BaseException | None = None) -> None:
        self.payload = payload
        self.error = error


class NotFound:
    """No handler serves the pattern (the outcome is the singleton ``NOT_FOUND``)."""

    __slots__ = ()
    payload: Mapping[str, Any] = {"status": "error", "message": PatternNotFoundError.MESSAGE}

    def __repr__(self) -> str:
        return "NOT_FOUND"


NOT_FOUND = NotFound()


class Handled:
    """An event went through ``count`` handlers; ``failures`` lists the ones that raised
    (each already logged)."""

    __slots__ = ("count", "failures")

    def __init__(
        self, count: int, failures: Sequence[tuple[MessageHandler, Exception]] = ()
    ) -> None:
        self.count = count
        self.failures = failures

    @property
    def error(self) -> dict[str, Any] | None:
        """The first failure as an error reply, or ``None``."""
        if not self.failures:
            return None
        handler, exc = self.failures[0]
        return error_payload(exc, where=handler.name, log=False)


# Successful outcomes carry no per-message data: share them (an event costs no allocation).
_NO_ROUTE = Route(None, ())
_HANDLED = tuple(Handled(n) for n in range(16))


Outcome = Reply | Stream | Failure | NotFound | Handled


class Dispatcher:
    """The router as one transport sees it.

    Args:
        router: the app's compiled router.
        transport: the transport's name (handlers' ``transports=[...]``, contexts).
        context: builds the handler context of a message (a ``MessageContext`` subclass
            carrying the transport's extras); by default the ``Inbound`` itself is the
            context.
        allows: a further filter on handlers (a WebSocket path serves only its
            gateway's handlers); ``None`` allows all.
        stream_key: which inbound stream of a handler a message joins (a WebSocket
            connection: ``inbound.source``); ``None``: one stream per handler.

    Attributes:
        feeds: the inbound streams of this dispatcher's stream handlers; a transport
            ends those of a connection that closed (``feeds.end(key)``) and closes them
            all when it stops (``await feeds.close()``).
    """

    __slots__ = ("_allows", "_context", "_routes", "_stream_key", "feeds", "router", "transport")

    def __init__(
        self,
        router: Router,
        transport: str,
        *,
        context: ContextFactory | None = None,
        allows: Callable[[MessageHandler], bool] | None = None,
        stream_key: Callable[[Inbound], Hashable] | None = None,
    ) -> None:
        self.router = router
        self.transport = transport
        self._context = context
        self._allows = allows
        self._stream_key = stream_key
        self._routes: NameCache[Route] = NameCache()
        self.feeds = Feeds(self.context)

    # -- lookups (synchronous) ------------------------------------------------------

    def route(self, pattern: str) -> Route:
        """The handlers of ``pattern`` (cached: ``NameCache``)."""
        found = self._routes.get(pattern)
        if found is not None:
            return found
        router, name, allows = self.router, self.transport, self._allows
        matching = [h for h in router.matching(pattern, name) if allows is None or allows(h)]
        message = next((h for h in matching if h.kind == "message"), None)
        events = tuple(h for h in matching if h.kind == "event")
        prefer_events = bool(events) and matching[0].kind == "event"
        return self._routes.keep(pattern, Route(message, events, prefer_events))

    def context(self, inbound: Inbound) -> MessageContext:
        """The message's handler context: the message itself, or (with a ``context``
        factory) built on first use."""
        factory = self._context
        if factory is None:
            inbound.transport = self.transport
            return inbound  # (not cached on itself: that would be a reference cycle)
        ctx = inbound._context
        if ctx is None:
            ctx = inbound._context = factory(inbound)
        return ctx

    # -- running handlers -----------------------------------------------------------

    def call(self, handler: MessageHandler, inbound: Inbound) -> Awaitable[Any]:
        """Run one handler on ``inbound``: awaiting it gives the handler's result and
        raises what the handler raises. (Not a coroutine itself, so a transport's hot
        loop awaits the handler directly, without a frame of ours in between.)"""
        ctx = self.context(inbound) if handler.needs_context else None
        return handler.call(inbound.payload, ctx)

    async def request(self, inbound: Inbound, route: Route | None = None) -> Outcome:
        """Run the request handler: ``Reply``, ``Stream``, ``Failure`` or ``NOT_FOUND``."""
        handler = (self.route(inbound.pattern) if route is None else route).message
        if handler is None:
            return NOT_FOUND
        try:
            ctx = self.context(inbound) if handler.needs_context else None
            result = await handler.call(inbound.payload, ctx)
            if is_stream(result):
                return Stream(result, handler)
            if result.__class__ is WsResponse:
                return Reply(encode(result.data), result.event)
            return Reply(encode(result))
        except Exception as exc:
            return Failure(error_payload(exc, where=handler.name), exc)

    async def event(self, inbound: Inbound, route: Route | None = None) -> Outcome:
        """Run every event handler (with none, the request handler, reply dropped);
        one failing never stops the others. ``Handled`` or ``NOT_FOUND``."""
        found = self.route(inbound.pattern) if route is None else route
        handlers: Sequence[MessageHandler] = found.events
        if not handlers:
            if found.message is None:
                return NOT_FOUND
            handlers = (found.message,)
        failures: list[tuple[MessageHandler, Exception]] | None = None
        for handler in handlers:
            try:
                if handler.call_stream is not None:
                    await self._feed(handler, inbound)
                    continue
                ctx = self.context(inbound) if handler.needs_context else None
                await handler.call(inbound.payload, ctx)
            except Exception as exc:
                _log_event_failure(handler, inbound.pattern, exc)
                failures = failures or []
                failures.append((handler, exc))
        count = len(handlers)
        if failures is None and count < len(_HANDLED):
            return _HANDLED[count]
        return Handled(count, failures or ())

    async def events(self, batch: Iterable[Inbound], batcher: Batcher | None = None) -> None:
        """Run a batch of events one after another, each as ``event`` would, in this one
        coroutine (a transport's drained queue): no coroutine or outcome per message,
        and runs of one pattern look their route up once. Events nobody handles are
        logged and dropped; failures are logged. With a ``batcher``, events for batch
        handlers join its open batches (the caller flushes them)."""
        last: str | None = None
        found = _NO_ROUTE
        single: MessageHandler | None = None
        for inbound in batch:
            pattern = inbound.pattern
            if pattern is not last:
                found = self.route(pattern)
                last = pattern
                handlers = found.events
                single = handlers[0] if len(handlers) == 1 and not found.batched else None
            if single is not None:  # event()'s fast path, inline
                try:
                    ctx = self.context(inbound) if single.needs_context else None
                    await single.call(inbound.payload, ctx)
                except Exception as exc:
                    _log_event_failure(single, pattern, exc)
            elif found.batched and batcher is not None:
                await self._batch(inbound, found, batcher)
            elif found:
                await self.event(inbound, found)
            else:
                logger.warning("No %s event handler for %r; dropped", self.transport, pattern)

    def _feed(self, handler: MessageHandler, inbound: Inbound) -> Awaitable[None]:
        key = None if self._stream_key is None else self._stream_key(inbound)
        return self.feeds.add(handler, inbound, key)

    async def _batch(self, inbound: Inbound, found: Route, batcher: Batcher) -> None:
        for handler in found.events:
            if handler.batch is not None:
                await batcher.add(handler, inbound, inbound.payload)
                continue
            if handler.call_stream is not None:
                await self._feed(handler, inbound)
                continue
            try:
                ctx = self.context(inbound) if handler.needs_context else None
                await handler.call(inbound.payload, ctx)
            except Exception as exc:
                _log_event_failure(handler, inbound.pattern, exc)

    def batcher(self) -> Batcher:
        """A ``Batcher`` for ``events``: failures are logged as event failures are."""

        async def report(handler: MessageHandler, messages: list[Any], exc: Exception) -> None:
            pattern = messages[0].pattern if messages else handler.pattern
            _log_event_failure(handler, pattern, exc)

        return Batcher(self.context, report, report)

    async def dispatch(self, inbound: Inbound) -> Outcome:
        """A message that may be either (a WS frame, an SSE ``POST``): the request
        handler, unless event handlers match more closely (or there is none)."""
        found = self.route(inbound.pattern)
        if found.message is not None and not found.prefer_events:
            return await self.request(inbound, found)
        return await self.event(inbound, found)


_log_event_failure = log_refusal


class _Last:
    """A ``Respond`` that keeps only the last item (or the error)."""

    __slots__ = ("data", "failed")

    def __init__(self) -> None:
        self.data = b"null"
        self.failed: dict[str, Any] | None = None

    async def item(self, data: bytes) -> bool:
        self.data = data
        return True

    async def end(self, last: bytes | None) -> None:
        if last is not None:
            self.data = last

    async def error(self, payload: dict[str, Any]) -> None:
        self.failed = payload


async def last_reply(stream: Stream) -> Reply | Failure:
    """Run a streamed reply to its end for a caller that wants one answer (``send`` of a
    stream): its last item as a ``Reply`` (``null`` when it had none), or the
    ``Failure`` it ended with."""
    last = _Last()
    await drive(stream.source, last, where=stream.handler.name)
    return Reply(last.data) if last.failed is None else Failure(last.failed)

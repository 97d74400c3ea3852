"""Server-Sent Events as a transport: pattern subscriptions, fan-out, resume, and POST in.

``SseTransport(path="/events")`` mounts two routes on the app's HTTP server:

- ``GET /events?subscribe=orders.*,chat.room1`` opens a ``text/event-stream`` that
  receives every ``app.publish(pattern, data)`` whose pattern matches one of the
  subscriptions, as ``event: <pattern>``, ``id: <event id>``, ``data: <JSON>``.
  A client reconnecting with ``Last-Event-ID`` first receives what it missed from a
  bounded replay buffer, or ``event: reset`` when that is gone.
- ``POST /events/<pattern>`` with a JSON body calls the ``@message_pattern`` handler
  (200 and the JSON reply; a stream replies as ``text/event-stream``) or the
  ``@event_pattern`` handlers (202).

Each publish is encoded once and the same bytes go to every matching client through
that client's own bounded buffer; a client whose buffer is full is dropped. See
docs/transports/sse.md for the wire format, limits and error cases.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from framework.exceptions import ConfigurationError, ForbiddenException
from framework.http._body import read_body
from framework.http._routing import error_response, failure_response, json_response
from framework.http._sse import EventStream, EventStreamResponse, StreamState, encode_event
from framework.messaging._cache import NameCache
from framework.messaging._patterns import is_wildcard, matches, validate_subscription
from framework.messaging.codecs import encode
from framework.messaging.context import ExecutionContext
from framework.messaging.dispatch import (
    NOT_FOUND,
    Dispatcher,
    Failure,
    Handled,
    Inbound,
    Reply,
    Stream,
)
from framework.transports._inflight import InFlight
from framework.transports._limits import PerClient
from framework.transports.base import Transport


@dataclass(slots=True)
class _Entry:
    id: str
    pattern: str
    block: bytes
    at: float


class ReplayBuffer:
    """The last events in arrival order, for clients that reconnect with an id.

    Ids are only compared for equality: the position of the client's last id in the
    buffer tells what came after it, so local sequence numbers and Kafka
    "partition-offset" ids work alike. Pure and synchronous (no event loop needed).

    Args:
        max_events: events kept; the oldest go first. 0 disables replay.
        max_age: seconds an event is kept.
    """

    def __init__(self, max_events: int, max_age: float) -> None:
        if max_events < 0 or max_age < 0:
            raise ConfigurationError("SseTransport replay_size and replay_age cannot be negative")
        self.max_events = max_events
        self.max_age = max_age
        self._entries: deque[_Entry] = deque()
        self._index: dict[str, int] = {}
        self._first = 0  # absolute position of _entries[0]

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, event_id: str, pattern: str, block: bytes, now: float) -> None:
        if self.max_events == 0:
            return
        self.prune(now)
        if len(self._entries) >= self.max_events:
            self._evict()
        self._index[event_id] = self._first + len(self._entries)
        self._entries.append(_Entry(event_id, pattern, block, now))

    def after(self, event_id: str, now: float) -> list[_Entry] | None:
        """Events after ``event_id``; ``None`` when the id is not (or no longer) here."""
        self.prune(now)
        position = self._index.get(event_id)
        if position is None:
            return None
        return list(islice(self._entries, position - self._first + 1, None))

    @property
    def latest_id(self) -> str | None:
        return self._entries[-1].id if self._entries else None

    def prune(self, now: float) -> None:
        horizon = now - self.max_age
        entries = self._entries
        while entries and entries[0].at < horizon:
            self._evict()

    def _evict(self) -> None:
        entry = self._entries.popleft()
        if self._index.get(entry.id) == self._first:
            del self._index[entry.id]
        self._first += 1


class _Subscriptions:
    """Streams by subscribed pattern.

    Exact patterns are a dict lookup; the wildcard patterns matching a published name are
    cached per name (the cache is cleared when the set of wildcard patterns changes).
    """

    def __init__(self) -> None:
        self.streams: dict[EventStream, tuple[str, ...]] = {}
        self._exact: dict[str, dict[EventStream, None]] = {}
        self._wild: dict[str, dict[EventStream, None]] = {}
        # Published names may come from clients: a ``NameCache`` bounds them.
        self._cache: NameCache[tuple[dict[EventStream, None], ...]] = NameCache()

    def add(self, stream: EventStream, patterns: tuple[str, ...]) -> None:
        self.streams[stream] = patterns
        for pattern in patterns:
            table = self._wild if is_wildcard(pattern) else self._exact
            group = table.get(pattern)
            if group is None:
                group = table[pattern] = {}
                if table is self._wild:
                    self._cache.clear()
            group[stream] = None

    def remove(self, stream: EventStream) -> None:
        for pattern in self.streams.pop(stream, ()):
            table = self._wild if is_wildcard(pattern) else self._exact
            group = table[pattern]
            del group[stream]
            if not group:
                del table[pattern]
                if table is self._wild:
                    self._cache.clear()

    def targets(self, name: str) -> Iterable[EventStream]:
        """Every stream subscribed to a pattern matching ``name``, each once."""
        groups = self._cache.get(name)
        if groups is None:
            groups = self._cache.keep(
                name, tuple(g for p, g in self._wild.items() if matches(p, name))
            )
        exact = self._exact.get(name)
        if exact is not None:
            groups = (exact, *groups)
        if len(groups) == 1:
            return groups[0]
        if not groups:
            return ()
        merged: dict[EventStream, None] = {}
        for group in groups:
            merged.update(group)
        return merged


class SseTransport(Transport):
    """Server-Sent Events: clients subscribe to patterns and receive ``app.publish`` events.

    Args:
        path: the subscription path; ``POST <path>/<pattern>`` dispatches messages.
        heartbeat: seconds; a stream that sent nothing during the last interval gets a
            ``: ping`` comment. ``None`` disables heartbeats.
        max_buffer: events waiting for one client; a client whose buffer is full is
            dropped (it may reconnect and resume with ``Last-Event-ID``).
        replay_size: events kept for resuming clients (0 disables resume).
        replay_age: seconds an event is kept for resuming clients.
        retry_ms: the reconnection delay sent to each client first (``retry:``, in
            milliseconds); ``None`` leaves the client's default (about 3 s in browsers).
        max_subscribers: concurrent streams; more get 503.
        max_subscribers_per_client: concurrent streams from one client IP address; more
            get 429. ``None`` (default): no limit (behind a reverse proxy every client
            shares its address).
        max_patterns: patterns in one subscription; more get 400.
        max_body: bytes in a ``POST`` body; more get 413.
        shutdown_timeout: seconds ``stop`` waits for in-flight ``POST`` handlers and for
            streams to write what they hold before dropping them.
        guards: objects with ``can_activate(ExecutionContext) -> bool`` (sync or async),
            checked on every subscription and ``POST``; the context has kind "http",
            transport "sse" and the starlette ``Request`` as ``context``. A refusal is 403.
    """

    name = "sse"

    def __init__(
        self,
        path: str = "/events",
        *,
        heartbeat: float | None = 15.0,
        max_buffer: int = 256,
        replay_size: int = 1000,
        replay_age: float = 300.0,
        retry_ms: int | None = 3000,
        max_subscribers: int = 10_000,
        max_subscribers_per_client: int | None = None,
        max_patterns: int = 32,
        max_body: int = 1024 * 1024,
        shutdown_timeout: float = 10.0,
        guards: Sequence[Any] = (),
    ) -> None:
        if heartbeat is not None and heartbeat <= 0:
            raise ConfigurationError("SseTransport heartbeat must be positive seconds, or None")
        per_client = max_subscribers_per_client
        if (
            max_buffer < 2
            or max_subscribers < 1
            or max_patterns < 1
            or max_body < 0
            or (per_client is not None and per_client < 1)
        ):
            raise ConfigurationError(
                "SseTransport limits: max_buffer >= 2, max_subscribers >= 1, max_patterns >= 1, "
                "max_body >= 0, max_subscribers_per_client >= 1 or None"
            )
        for guard in guards:
            if not callable(getattr(guard, "can_activate", None)):
                raise ConfigurationError(
                    f"SseTransport guard {guard!r} has no can_activate(context) method"
                )
        self.path = "/" + path.strip("/")
        self.heartbeat = heartbeat
        self.max_buffer = max_buffer
        self.retry_ms = retry_ms
        self.max_subscribers = max_subscribers
        self.max_subscribers_per_client = max_subscribers_per_client
        self._per_client = PerClient(max_subscribers_per_client)
        self.max_patterns = max_patterns
        self.max_body = max_body
        self.shutdown_timeout = shutdown_timeout
        self.guards = tuple(guards)
        self.replay = ReplayBuffer(replay_size, replay_age)
        self._subs = _Subscriptions()
        # Past this many buffered events, publish yields once so writers can drain a
        # burst; a buffer that still fills up belongs to a client that is not reading.
        self._high_water = max_buffer // 2
        self._running = False
        self._draining = False
        self._ticker: asyncio.Task[None] | None = None
        self._inflight = InFlight()  # POSTs being handled
        self._no_streams = asyncio.Event()
        self._no_streams.set()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._dispatcher = Dispatcher(self.host.router, self.name)
        self._running = True
        self._draining = False
        if self.heartbeat is not None:
            self._ticker = asyncio.create_task(self._tick(self.heartbeat), name="sse-heartbeat")

    async def drain(self) -> None:
        """Before the HTTP server shuts down: refuse new subscriptions (503) and end
        every stream after it wrote what it holds, so clients reconnect (to another
        instance) and resume with ``Last-Event-ID``. Streams still open after
        ``shutdown_timeout`` seconds are dropped."""
        await self._end_streams(wait_for_posts=False)

    async def stop(self) -> None:
        """Refuse new requests, let ``POST`` handlers finish, end every stream after it
        wrote what it holds (drop what has not within ``shutdown_timeout``)."""
        if not self._running:
            return
        self._running = False
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        await self._end_streams(wait_for_posts=True)
        await self._dispatcher.feeds.close(self.shutdown_timeout)

    async def _end_streams(self, *, wait_for_posts: bool) -> None:
        self._draining = True
        self.close_streams()
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                if wait_for_posts:
                    await self._inflight.wait()
                await self._no_streams.wait()
        except TimeoutError:
            for stream in list(self._subs.streams):
                stream.drop()

    def close_streams(self) -> int:
        """End every open stream after it wrote what it holds; returns how many.

        Clients reconnect (after ``retry_ms``) and resume with ``Last-Event-ID``: use it
        to move clients off an instance before it goes away.
        """
        streams = [s for s in self._subs.streams if s.state is StreamState.OPEN]
        for stream in streams:
            stream.close()
        return len(streams)

    @property
    def ready(self) -> bool:
        return self._running

    @property
    def subscriber_count(self) -> int:
        """Open streams (for metrics and tests)."""
        return len(self._subs.streams)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(self.path, self._subscribe, methods=["GET"], name="sse.subscribe"),
            Route(self.path + "/{pattern}", self._dispatch, methods=["POST"], name="sse.post"),
        ]

    # -- fan-out ---------------------------------------------------------------------

    async def publish(self, pattern: str, payload: bytes, event_id: str | None) -> None:
        """Encode the event once; queue the same bytes for every matching stream."""
        if not self._running:
            return
        block = encode_event(payload, event=pattern, id=event_id)
        if event_id is not None:
            self.replay.add(event_id, pattern, block, time.monotonic())
        high = self._high_water
        pressure = False
        full: list[EventStream] | None = None
        for stream in self._subs.targets(pattern):
            count = stream.push(block)
            if count > high:
                pressure = True
            elif count < 0:
                full = full or []
                full.append(stream)
        if full:
            for stream in full:
                self._drop(stream, "buffer full")
        if pressure:
            await asyncio.sleep(0)

    def _drop(self, stream: EventStream, why: str) -> None:
        if stream.state is StreamState.OPEN:
            self.host.logger.warning("SSE client %s dropped: %s", stream.name, why)
            stream.drop()
            self.host.events.dropped(self, stream.name, why)

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for stream in [s for s in self._subs.streams if not s.tick()]:
                self._drop(stream, "not reading (heartbeat did not fit)")

    # -- subscriptions ---------------------------------------------------------------

    async def _subscribe(self, request: Request) -> Response:
        if not self._running or self._draining:
            return _error(503, "The SSE transport is not running")
        refused = await self._check_guards(request, self._subscribe)
        if refused is not None:
            return refused
        patterns: list[str] = []
        for value in request.query_params.getlist("subscribe"):
            patterns.extend(p.strip() for p in value.split(",") if p.strip())
        if not patterns:
            return _error(400, "Name the patterns to receive: ?subscribe=orders.*,chat.room1")
        if len(patterns) > self.max_patterns:
            return _error(400, f"At most {self.max_patterns} patterns per subscription")
        for pattern in patterns:
            try:
                validate_subscription(pattern)
            except ConfigurationError as exc:
                return _error(400, str(exc))
        if len(self._subs.streams) >= self.max_subscribers:
            return _error(503, "Too many event streams; try again later")
        if self._per_client.full(request.client.host if request.client else None):
            return _error(429, "Too many event streams from this address")
        last_id = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
        return _Subscription(self, tuple(dict.fromkeys(patterns)), last_id or None)

    def _open(self, stream: EventStream, patterns: tuple[str, ...], last_id: str | None) -> None:
        # No await between computing the replay and registering: no event can fall in
        # between, so the client misses nothing and gets nothing twice.
        if self.retry_ms is not None:
            stream.prime(b"retry: %d\n\n" % self.retry_ms)
        if last_id is not None:
            missed = self.replay.after(last_id, time.monotonic())
            blocks = None
            if missed is not None:
                blocks = [e.block for e in missed if any(matches(p, e.pattern) for p in patterns)]
            if blocks is None:
                stream.prime(self._reset_block(last_id, "The events after this id are gone"))
            elif len(blocks) > self.max_buffer:
                # The replay counts against the client's own bound, like live events: a
                # client this far behind starts over instead of holding a copy each.
                why = f"More than max_buffer ({self.max_buffer}) events were missed"
                stream.prime(self._reset_block(last_id, why))
            else:
                for block in blocks:  # the replay buffer's own bytes, not a copy
                    stream.prime(block)
        self._subs.add(stream, patterns)
        self.host.events.connected(self, stream.name)
        self._no_streams.clear()

    def _reset_block(self, last_id: str, reason: str) -> bytes:
        body = {"lastEventId": last_id, "reason": reason}
        # The id moves the client past the gap, so its next reconnect resumes from here.
        return encode_event(encode(body), event="reset", id=self.replay.latest_id or "")

    def _close(self, stream: EventStream) -> None:
        self._subs.remove(stream)
        self.host.events.disconnected(self, stream.name)
        if not self._subs.streams:
            self._no_streams.set()

    # -- inbound messages --------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        if not self._running:
            return _error(503, "The SSE transport is not running")
        refused = await self._check_guards(request, self._dispatch)
        if refused is not None:
            return refused
        self._inflight.enter()
        try:
            return await self._handle(request)
        finally:
            self._inflight.leave()

    async def _handle(self, request: Request) -> Response:
        pattern: str = request.path_params["pattern"]
        body = await read_body(request, self.max_body)
        if body is None:
            return _error(413, f"The body is larger than {self.max_body} bytes")
        # The Inbound is its handlers' context: transport "sse", raw = the Request.
        inbound = Inbound(pattern, body, request.headers, request)
        match await self._dispatcher.dispatch(inbound):
            case Reply(data=data):
                return Response(data, 200, media_type="application/json")
            case Stream(source=source, handler=handler):
                return EventStreamResponse(
                    source, heartbeat=self.heartbeat, max_buffer=self.max_buffer, where=handler.name
                )
            case Failure(payload=payload, error=error):
                return failure_response(payload, error)
            case Handled():
                return Response(b"", 202)
            case _:
                return json_response({**NOT_FOUND.payload, "statusCode": 404}, 404)

    async def _check_guards(self, request: Request, endpoint: Any) -> Response | None:
        if not self.guards:
            return None
        ectx = ExecutionContext("http", self.name, self.path, endpoint, type(self), request, None)
        try:
            for guard in self.guards:
                allowed = guard.can_activate(ectx)
                if inspect.isawaitable(allowed):
                    allowed = await allowed
                if not allowed:
                    raise ForbiddenException()
        except Exception as exc:
            return error_response(exc, f"{type(self).__name__} guard")
        return None


class _Subscription(Response):
    """The response of one subscription: registers the stream while it runs."""

    def __init__(
        self, transport: SseTransport, patterns: tuple[str, ...], last_id: str | None
    ) -> None:
        self.transport = transport
        self.patterns = patterns
        self.last_id = last_id
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        name = f"{client[0]}:{client[1]}" if client else "client"
        transport = self.transport
        stream = EventStream(max_buffer=transport.max_buffer, name=name)
        counts = transport._per_client
        host = client[0] if client else None
        # Checked when the request was accepted; counted while open (a stream that raced
        # past the limit in between is served, not counted).
        counted = counts.enter(host)
        transport._open(stream, self.patterns, self.last_id)
        try:
            await stream.serve(receive, send)
        finally:
            transport._close(stream)
            if counted:
                counts.leave(host)


def _error(status: int, message: str) -> Response:
    return json_response({"status": "error", "message": message, "statusCode": status}, status)

"""``RedisStreamsTransport``: serve the app's handlers from Redis Streams, at least once.

Written only against ``framework.transports`` (the public transport API), as a user's
own transport would be: an entry is decoded into an ``Inbound``, the framework's
``Dispatcher`` runs its handlers, and the outcome is written back as reply entries
(``drive`` runs a streamed reply into ``_Replies``). What is here is the Redis wire and
its I/O. How entries flow (see README.md beside this file):

- Every exact pattern served on "redis-streams" (plus ``streams=``) is the stream
  ``<prefix><pattern>``, read by one consumer group with ``XREADGROUP``. Each of
  ``workers`` tasks reads a batch and handles it in order, awaiting handlers inline.
- An entry is acknowledged (``XACK``) only after its handlers finished: an event whose
  handler raised stays pending; a request is acknowledged once its reply (or error
  reply) is written. A crash leaves the entries in hand pending.
- A claim task reclaims entries pending longer than ``claim_idle`` (a crashed
  consumer's, or failed events) with ``XAUTOCLAIM`` and handles them again; entries
  delivered ``max_deliveries`` times go to a dead-letter stream instead. It also keeps
  the entries this consumer is still working on fresh (``XCLAIM ... JUSTID``), so a slow
  handler or a long stream reply is not taken over by another consumer.
- Replies go to the stream the request names, ``NOMKSTREAM``: when the client is gone
  (its reply stream deleted or expired), a stream reply stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from framework import TransportError
from framework.transports import (
    NOT_FOUND,
    Dispatcher,
    Failure,
    Handled,
    Inbound,
    Outcome,
    Reply,
    Stream,
    Transport,
    drive,
    encode,
    is_wildcard,
    last_reply,
)

from .aio import cancel_and_wait
from .context import RedisStreamsContext
from .wire import NAME, Fields, Message, dead_letter_key, parse_entry, reply_fields, stream_key

logger = logging.getLogger("examples.redis_streams")

Fate = Literal["ack", "leave", "background"]
"""What becomes of an entry once handled: acknowledged, left pending, or acknowledged
later by a background stream reply."""


def _fields(fields: Fields) -> dict[FieldT, EncodableT]:
    """Our ``{bytes: bytes}`` entries as redis-py's field mapping type."""
    return cast("dict[FieldT, EncodableT]", fields)


Entry = tuple[bytes, dict[bytes, bytes] | None]


class RedisStreamsTransport(Transport):
    """Serve message and event handlers from Redis Streams with a consumer group.

    Args:
        url: the Redis server, ``redis://host:port/db``.
        group: the consumer group; instances sharing it share the work.
        consumer: this instance's consumer name (default: host, pid and a random part).
        prefix: prepended to patterns to make stream keys.
        streams: more patterns to read, beyond the exact patterns of the handlers: for
            wildcard handlers (Redis cannot subscribe by pattern) or to answer requests
            nobody handles with the "no matching handler" error instead of silence.
        start_id: where a new group starts: ``"$"`` new entries only, ``"0"`` the
            whole stream.
        workers: tasks reading and handling batches; 1 keeps each stream's order.
        batch_size: entries per ``XREADGROUP``/``XAUTOCLAIM`` call.
        block: seconds one ``XREADGROUP`` waits for entries.
        claim_idle: seconds an entry may stay pending before it is reclaimed; also how
            long a failed event waits before its retry. Every ``claim_idle / 3`` s the
            claim task runs.
        max_deliveries: deliveries of one entry before it goes to the dead-letter stream
            ``<prefix>dlq:<pattern>`` (``None``: retry forever).
        maxlen: approximate maximum length (``MAXLEN ~``) of the reply and dead-letter
            streams this transport writes, in entries.
        max_streams: stream replies running at once; more wait for a free slot.
        stop_timeout: seconds ``stop`` waits for in-flight handlers and streams before
            cancelling them (what they had not finished stays pending).
        max_connections: Redis connections at most; each worker holds one while it
            blocks, so at least ``workers + 2``.
        pool_timeout: seconds to wait for a free connection before failing.
        **redis_options: more ``redis.asyncio`` connection options (``password``...).
            ``socket_timeout`` defaults to ``block + 10`` seconds.
    """

    name = NAME

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        group: str = "framework",
        consumer: str | None = None,
        prefix: str = "fw:",
        streams: Iterable[str] = (),
        start_id: str = "$",
        workers: int = 1,
        batch_size: int = 64,
        block: float = 2.0,
        claim_idle: float = 30.0,
        max_deliveries: int | None = 5,
        maxlen: int = 100_000,
        max_streams: int = 100,
        stop_timeout: float = 10.0,
        max_connections: int = 32,
        pool_timeout: float = 10.0,
        **redis_options: Any,
    ) -> None:
        if min(workers, batch_size, maxlen, max_streams) < 1:
            raise ValueError("workers, batch_size, maxlen and max_streams must be at least 1")
        if max_deliveries is not None and max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1 (or None)")
        if block <= 0 or claim_idle <= 0:
            raise ValueError("block and claim_idle must be positive")
        if max_connections < workers + 2:
            raise ValueError("max_connections must be at least workers + 2")
        self.url = url
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.prefix = prefix
        self.extra_streams = list(streams)
        self.start_id = start_id
        self.workers = workers
        self.batch_size = batch_size
        self.block = block
        self.claim_idle = claim_idle
        self.max_deliveries = max_deliveries
        self.maxlen = maxlen
        self.max_streams = max_streams
        self.stop_timeout = stop_timeout
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.redis_options = {"socket_timeout": block + 10, **redis_options}
        self._redis: Redis | None = None
        self._patterns: dict[str, str] = {}  # stream key -> pattern
        self._workers: list[asyncio.Task[None]] = []
        self._reading: set[asyncio.Task[Any]] = set()
        self._streams: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.Task[None]] = []
        self._closing = asyncio.Event()
        self._stopping = False
        self._slots: asyncio.Semaphore | None = None
        # Entries read and not yet acknowledged or given up: kept fresh, never reclaimed.
        self._inflight: set[tuple[str, bytes]] = set()
        self._cursors: dict[str, bytes | str] = {}

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create the group on every stream, start the workers and claimer."""
        self._dispatcher = Dispatcher(self.host.router, self.name, context=self._context)
        self._patterns = {stream_key(self.prefix, p): p for p in self._served_patterns()}
        pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=self.pool_timeout,
            **self.redis_options,
        )
        self._redis = Redis.from_pool(pool)
        try:
            await self._create_groups()
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            self._redis = None
            raise TransportError(f"Redis at {self.url} is not available: {exc!r}") from exc
        self._stopping = False
        self._closing = asyncio.Event()
        self._slots = asyncio.Semaphore(self.max_streams)
        self._inflight.clear()
        if self._patterns:
            self._workers = [
                asyncio.create_task(self._work(), name=f"redis-streams-{i}")
                for i in range(self.workers)
            ]
            # Two loops: claiming may run handlers, which must not delay the refresh.
            interval = self.claim_idle / 3
            self._timers = [
                asyncio.create_task(self._every(interval, self._refresh), name="redis-refresh"),
                asyncio.create_task(self._every(interval, self._claim), name="redis-claim"),
            ]

    def _served_patterns(self) -> list[str]:
        router = self.host.router
        served = router.patterns(self.name)
        exact = {p for p in served if not is_wildcard(p)}
        reached: set[str] = set()
        for listed in self.extra_streams:
            route = self._dispatcher.route(listed)
            found = [*route.events, route.message]
            reached.update(h.pattern for h in found if h is not None)
        for pattern in sorted(served - exact - reached):
            self.host.logger.warning(
                "Handler pattern %r is a wildcard: Redis Streams serve it only for "
                "streams listed in streams=[...], and none of those matches it",
                pattern,
            )
        return sorted(exact | set(self.extra_streams))

    async def _create_groups(self) -> None:
        assert self._redis is not None
        for key in self._patterns:
            try:
                await self._redis.xgroup_create(key, self.group, id=self.start_id, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def stop(self) -> None:
        """Stop reading, let in-flight handlers finish (at most ``stop_timeout``), close."""
        redis = self._redis
        if redis is None:
            return
        self._stopping = True
        # Workers blocked in XREADGROUP hold nothing: cancel them. The others finish the
        # batch in hand (at most stop_timeout), then see _stopping.
        await cancel_and_wait(self._reading, timeout=self.stop_timeout)
        busy = [*self._workers, *self._streams]
        if busy:
            _, late = await asyncio.wait(busy, timeout=self.stop_timeout)
            await cancel_and_wait(late, timeout=self.stop_timeout)
        self._closing.set()
        await asyncio.gather(*self._timers, return_exceptions=True)
        await self._forget_consumer()
        self._workers, self._timers, self._redis = [], [], None
        await redis.aclose()

    async def _forget_consumer(self) -> None:
        """Delete this consumer from the group where it holds no pending entry, so
        restarts do not pile up consumers (one with pending entries must stay: deleting
        it would drop them)."""
        assert self._redis is not None
        for key in self._patterns:
            try:
                mine = await self._redis.xpending_range(
                    key, self.group, min="-", max="+", count=1, consumername=self.consumer
                )
                if not mine:
                    await self._redis.xgroup_delconsumer(key, self.group, self.consumer)
            except RedisError as exc:
                logger.warning("Could not remove consumer %s from %s: %r", self.consumer, key, exc)

    @property
    def ready(self) -> bool:
        return self._redis is not None and all(not t.done() for t in self._workers)

    # -- reading ---------------------------------------------------------------------

    async def _work(self) -> None:
        assert self._redis is not None
        redis, streams = self._redis, dict.fromkeys(self._patterns, ">")
        task = asyncio.current_task()
        assert task is not None
        failures = 0
        while not self._stopping:
            self._reading.add(task)
            try:
                batches: list[tuple[bytes, list[Entry]]] = await redis.xreadgroup(  # type: ignore[assignment]
                    self.group,
                    self.consumer,
                    streams,  # type: ignore[arg-type]
                    count=self.batch_size,
                    block=int(self.block * 1000),
                )
                failures = 0
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except (RedisError, OSError) as exc:
                failures += 1
                await self._recover(exc, failures)
                continue
            finally:
                self._reading.discard(task)
            # All of the answer is in hand now, not only the stream being handled.
            for key, entries in batches:
                self._inflight.update((key.decode(), entry_id) for entry_id, _ in entries)
            for key, entries in batches:
                try:
                    await self._handle_batch(key.decode(), entries, {})
                except (RedisError, OSError) as exc:  # the XACK failed: redelivered later
                    logger.error("Acknowledging entries of %r failed: %r", key, exc)
                except Exception:  # a bug here must not end the worker
                    logger.exception("Handling entries of %r failed", key)

    async def _recover(self, exc: BaseException, failures: int) -> None:
        """Back off after a failed read; recreate groups a restarted Redis lost."""
        delay = min(0.1 * 2**failures, 5.0)
        logger.error("Reading Redis streams failed (%r); retrying in %.1f s", exc, delay)
        try:
            async with asyncio.timeout(delay):
                await self._closing.wait()
        except TimeoutError:
            pass
        if "NOGROUP" in str(exc):
            # If this fails too, the next read fails and comes back here.
            with contextlib.suppress(RedisError, OSError):
                await self._create_groups()

    async def _handle_batch(
        self, key: str, entries: Sequence[Entry], deliveries: dict[bytes, int]
    ) -> None:
        assert self._redis is not None
        pattern = self._patterns[key]
        self._inflight.update((key, entry_id) for entry_id, _ in entries)
        acks: list[bytes] = []
        try:
            for entry_id, fields in entries:
                fate: Fate = "ack"
                try:
                    count = deliveries.get(entry_id, 1)
                    if fields is None:
                        pass  # trimmed away while pending: nothing left to handle
                    elif self.max_deliveries is not None and count > self.max_deliveries:
                        await self._dead_letter(key, pattern, entry_id, fields, count)
                    else:
                        fate = await self._handle(key, pattern, entry_id, fields, count)
                except (RedisError, OSError) as exc:
                    logger.error("Entry %s of %s stays pending: %r", entry_id, key, exc)
                    fate = "leave"
                if fate == "ack":
                    acks.append(entry_id)
                elif fate == "leave":
                    self._inflight.discard((key, entry_id))
            if acks:
                await self._redis.xack(key, self.group, *acks)
        finally:
            for entry_id in acks:
                self._inflight.discard((key, entry_id))

    async def _handle(
        self, key: str, pattern: str, entry_id: bytes, fields: dict[bytes, bytes], count: int
    ) -> Fate:
        try:
            msg = parse_entry(fields)
        except ValueError as exc:
            logger.error("Entry %s of %s is malformed (%s); dropped", entry_id, key, exc)
            return "ack"
        delivery = _Delivery(key, entry_id, msg, count)
        inbound = Inbound(pattern, msg.data, msg.headers, fields, delivery)
        if msg.is_request:
            return await self._request(inbound, msg)
        outcome = await self._dispatcher.event(inbound)
        if outcome is NOT_FOUND:
            logger.warning("No event handler for pattern %r; entry %s dropped", pattern, entry_id)
            return "ack"
        # A failed event stays pending: the claim task retries it after claim_idle.
        return "leave" if isinstance(outcome, Handled) and outcome.failures else "ack"

    def _context(self, inbound: Inbound) -> RedisStreamsContext:
        """The handler context of an entry (the dispatcher builds it only when asked)."""
        entry: _Delivery = inbound.source
        return RedisStreamsContext(
            inbound.pattern,
            entry.stream,
            entry.entry_id.decode(),
            inbound.raw,
            entry.msg.headers,
            entry.msg.key,
            entry.deliveries,
        )

    # -- requests --------------------------------------------------------------------

    async def _request(self, inbound: Inbound, msg: Message) -> Fate:
        remaining = None
        if msg.deadline_ms is not None:
            remaining = msg.deadline_ms / 1000 - time.time()
            if remaining <= 0:
                entry: _Delivery = inbound.source
                logger.info(
                    "Request %s on %s expired before it was handled", entry.entry_id, entry.stream
                )
                return "ack"
        if msg.stream:
            assert self._slots is not None
            await self._slots.acquire()
            task = asyncio.create_task(self._pump(inbound, msg, remaining))
            self._streams.add(task)
            task.add_done_callback(self._streams.discard)
            return "background"
        replies = _Replies(self, msg)
        try:
            async with asyncio.timeout(remaining):
                outcome = await self._dispatcher.request(inbound)
                if isinstance(outcome, Stream):  # send() of a stream: its last item
                    outcome = await last_reply(outcome)
        except TimeoutError:
            return "ack"  # the caller stopped waiting: nobody reads a reply now
        await _answer(outcome, replies)
        replies.raise_if_broken()
        return "ack"

    async def _reply(
        self, msg: Message, n: int, *, data: bytes | None = None, err: bytes | None = None,
        end: bool = False,
    ) -> bool:  # fmt: skip
        """Write one reply entry; False when the reply stream is gone (client left)."""
        assert self._redis is not None and msg.reply is not None and msg.cid is not None
        written = await self._redis.xadd(
            msg.reply,
            _fields(reply_fields(msg.cid, n, data=data, err=err, end=end)),
            maxlen=self.maxlen,
            approximate=True,
            nomkstream=True,
        )
        return written is not None

    async def _pump(self, inbound: Inbound, msg: Message, remaining: float | None) -> None:
        """Send a stream reply item by item, then acknowledge the request."""
        entry: _Delivery = inbound.source
        replies = _Replies(self, msg)
        try:
            try:
                async with asyncio.timeout(remaining):
                    outcome = await self._dispatcher.request(inbound)
            except TimeoutError:
                pass  # the caller stopped waiting for the first item: nothing to send
            else:
                if isinstance(outcome, Stream):
                    await drive(outcome.source, replies, where=outcome.handler.name)
                else:
                    await _answer(outcome, replies)
                replies.raise_if_broken()
            assert self._redis is not None
            await self._redis.xack(entry.stream, self.group, entry.entry_id)
        except (RedisError, OSError) as exc:
            logger.error("Stream reply to %s stays pending: %r", entry.entry_id, exc)
        finally:
            assert self._slots is not None
            self._slots.release()
            self._inflight.discard((entry.stream, entry.entry_id))

    # -- claiming --------------------------------------------------------------------

    async def _every(self, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` every ``interval`` seconds until ``stop`` ends the transport."""
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self._closing.wait()
                return
            except TimeoutError:
                pass
            try:
                await job()
            except (RedisError, OSError) as exc:
                logger.error("Redis stream %s failed: %r", job.__name__.strip("_"), exc)

    async def _refresh(self) -> None:
        """Reset the idle time of entries still being worked on (``JUSTID`` does not
        count as a delivery)."""
        assert self._redis is not None
        by_key: dict[str, list[bytes]] = {}
        for key, entry_id in list(self._inflight):
            by_key.setdefault(key, []).append(entry_id)
        for key, ids in by_key.items():
            await self._redis.xclaim(key, self.group, self.consumer, 0, ids, justid=True)  # type: ignore[arg-type]

    async def _claim(self) -> None:
        """Take over entries pending longer than ``claim_idle`` and handle them."""
        assert self._redis is not None
        for key in self._patterns:
            if self._stopping or (self._slots is not None and self._slots.locked()):
                return  # stopping, or no stream slot free: claim later
            answer = await self._redis.xautoclaim(
                key,
                self.group,
                self.consumer,
                min_idle_time=int(self.claim_idle * 1000),
                start_id=self._cursors.get(key, "0-0"),
                count=self.batch_size,
            )
            self._cursors[key] = answer[0]
            entries = [e for e in answer[1] if (key, e[0]) not in self._inflight]
            if entries:
                await self._handle_batch(key, entries, await self._deliveries(key, entries))

    async def _deliveries(self, key: str, entries: Sequence[Entry]) -> dict[bytes, int]:
        """How many times each claimed entry was delivered (``XPENDING`` over their range)."""
        assert self._redis is not None
        rows = await self._redis.xpending_range(
            key,
            self.group,
            min=entries[0][0],
            max=entries[-1][0],
            count=len(entries) + len(self._inflight),
            consumername=self.consumer,
        )
        return {bytes(row["message_id"]): int(row["times_delivered"]) for row in rows}  # type: ignore[arg-type]

    async def _dead_letter(
        self, key: str, pattern: str, entry_id: bytes, fields: dict[bytes, bytes], count: int
    ) -> None:
        assert self._redis is not None
        target = dead_letter_key(self.prefix, pattern)
        logger.error(
            "Entry %s of %s failed %d deliveries; moved to %s", entry_id, key, count - 1, target
        )
        extra = {
            b"source": key.encode(),
            b"entry": entry_id,
            b"group": self.group.encode(),
            b"deliveries": str(count - 1).encode(),
        }
        entry = _fields({**fields, **extra})
        await self._redis.xadd(target, entry, maxlen=self.maxlen, approximate=True)


class _Delivery:
    """Where an entry came from: what its handler context tells (``Inbound.source``)."""

    __slots__ = ("deliveries", "entry_id", "msg", "stream")

    def __init__(self, stream: str, entry_id: bytes, msg: Message, deliveries: int) -> None:
        self.stream = stream
        self.entry_id = entry_id
        self.msg = msg
        self.deliveries = deliveries


class _Replies:
    """The ``Respond`` of a request: reply entries numbered from 0 on the stream the
    request names. A Redis failure stops the reply (``raise_if_broken`` re-raises it, so
    the request stays pending) instead of becoming an error reply."""

    __slots__ = ("_msg", "_transport", "broken", "n")

    def __init__(self, transport: RedisStreamsTransport, msg: Message) -> None:
        self._transport = transport
        self._msg = msg
        self.n = 0
        self.broken: BaseException | None = None

    async def item(self, data: bytes) -> bool:
        written = await self._write(data=data)
        if written:
            self.n += 1
        return written  # False: the caller left (its reply stream is gone)

    async def end(self, last: bytes | None) -> None:
        await self._write(data=last, end=True)

    async def error(self, payload: dict[str, Any]) -> None:
        await self._write(err=encode(payload))

    async def _write(self, **fields: Any) -> bool:
        if self.broken is not None:
            return False
        try:
            return await self._transport._reply(self._msg, self.n, **fields)
        except (RedisError, OSError) as exc:
            self.broken = exc
            return False

    def raise_if_broken(self) -> None:
        if self.broken is not None:
            raise self.broken


async def _answer(outcome: Outcome, replies: _Replies) -> None:
    """Write a single reply (a value, an error reply, or "no handler")."""
    if isinstance(outcome, Reply):
        await replies.end(outcome.data)
    elif isinstance(outcome, Failure):
        await replies.error(outcome.payload)
    else:
        await replies.error(dict(NOT_FOUND.payload))

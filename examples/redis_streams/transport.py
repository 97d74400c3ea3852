"""``RedisStreamsTransport``: serve the app's handlers from Redis Streams, at least once.

Written only against ``framework.transports`` (the public transport API), as a user's
own transport would be. How entries flow (see README.md beside this file):

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

from framework import PatternNotFoundError, TransportError
from framework.transports import (
    MessageHandler,
    Transport,
    encode,
    error_payload,
    is_wildcard,
    run_event_handlers,
)

from .aio import cancel_and_wait
from .context import RedisStreamsContext
from .wire import NAME, Fields, Inbound, dead_letter_key, parse_entry, reply_fields, stream_key

logger = logging.getLogger("examples.redis_streams")

Outcome = Literal["ack", "leave", "background"]


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
            found = [*router.find_events(listed, self.name), router.find_message(listed, self.name)]
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
                outcome: Outcome = "ack"
                try:
                    count = deliveries.get(entry_id, 1)
                    if fields is None:
                        pass  # trimmed away while pending: nothing left to handle
                    elif self.max_deliveries is not None and count > self.max_deliveries:
                        await self._dead_letter(key, pattern, entry_id, fields, count)
                    else:
                        outcome = await self._handle(key, pattern, entry_id, fields, count)
                except (RedisError, OSError) as exc:
                    logger.error("Entry %s of %s stays pending: %r", entry_id, key, exc)
                    outcome = "leave"
                if outcome == "ack":
                    acks.append(entry_id)
                elif outcome == "leave":
                    self._inflight.discard((key, entry_id))
            if acks:
                await self._redis.xack(key, self.group, *acks)
        finally:
            for entry_id in acks:
                self._inflight.discard((key, entry_id))

    async def _handle(
        self, key: str, pattern: str, entry_id: bytes, fields: dict[bytes, bytes], count: int
    ) -> Outcome:
        try:
            msg = parse_entry(fields)
        except ValueError as exc:
            logger.error("Entry %s of %s is malformed (%s); dropped", entry_id, key, exc)
            return "ack"

        def context() -> RedisStreamsContext:
            return RedisStreamsContext(
                pattern, key, entry_id.decode(), fields, msg.headers, msg.key, count
            )

        if msg.is_request:
            return await self._request(key, entry_id, pattern, msg, context)
        handlers = self.host.router.find_events(pattern, self.name)
        if not handlers:
            logger.warning("No event handler for pattern %r; entry %s dropped", pattern, entry_id)
            return "ack"
        ctx = context() if any(h.needs_context for h in handlers) else None
        failed = await run_event_handlers(handlers, msg.data, ctx)
        # A failed event stays pending: the claim task retries it after claim_idle.
        return "leave" if failed else "ack"

    # -- requests --------------------------------------------------------------------

    async def _request(
        self, key: str, entry_id: bytes, pattern: str, msg: Inbound, context: Any
    ) -> Outcome:
        remaining = None
        if msg.deadline_ms is not None:
            remaining = msg.deadline_ms / 1000 - time.time()
            if remaining <= 0:
                logger.info("Request %s on %s expired before it was handled", entry_id, key)
                return "ack"
        handler = self.host.router.find_message(pattern, self.name)
        if handler is None:
            await self._reply(msg, 0, err=encode(error_payload(PatternNotFoundError(pattern))))
            return "ack"
        ctx = context() if handler.needs_context else None
        if msg.stream:
            assert self._slots is not None
            await self._slots.acquire()
            task = asyncio.create_task(self._pump(key, entry_id, msg, handler, ctx, remaining))
            self._streams.add(task)
            task.add_done_callback(self._streams.discard)
            return "background"
        timer = asyncio.timeout(remaining)
        try:
            async with timer:
                result = await handler.call(msg.data, ctx)
                if hasattr(result, "__aiter__"):
                    last = None
                    async for item in result:
                        last = item
                    result = last
                body = encode(result)
        except TimeoutError as exc:
            if not timer.expired():  # the handler's own TimeoutError: an error reply
                await self._reply(msg, 0, err=encode(error_payload(exc, where=handler.name)))
            # else the caller stopped waiting: nobody reads a reply now
            return "ack"
        except Exception as exc:
            await self._reply(msg, 0, err=encode(error_payload(exc, where=handler.name)))
            return "ack"
        await self._reply(msg, 0, data=body, end=True)
        return "ack"

    async def _reply(
        self, msg: Inbound, n: int, *, data: bytes | None = None, err: bytes | None = None,
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

    async def _pump(
        self,
        key: str,
        entry_id: bytes,
        msg: Inbound,
        handler: MessageHandler,
        ctx: Any,
        remaining: float | None,
    ) -> None:
        """Send a stream reply item by item, then acknowledge the request."""
        n = 0
        try:
            try:
                async with asyncio.timeout(remaining):
                    result = await handler.call(msg.data, ctx)
                if not hasattr(result, "__aiter__"):
                    await self._reply(msg, 0, data=encode(result), end=True)
                else:
                    iterator = aiter(result)
                    try:
                        async for item in iterator:
                            if not await self._reply(msg, n, data=encode(item)):
                                break  # the client is gone: stop producing
                            n += 1
                        else:
                            await self._reply(msg, n, end=True)
                    finally:
                        close = getattr(iterator, "aclose", None)
                        if close is not None:
                            with contextlib.suppress(Exception):
                                await close()
            except (RedisError, OSError):
                raise
            except Exception as exc:
                await self._reply(msg, n, err=encode(error_payload(exc, where=handler.name)))
            assert self._redis is not None
            await self._redis.xack(key, self.group, entry_id)
        except (RedisError, OSError) as exc:
            logger.error("Stream reply to %s stays pending: %r", entry_id, exc)
        finally:
            assert self._slots is not None
            self._slots.release()
            self._inflight.discard((key, entry_id))

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

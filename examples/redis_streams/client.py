"""``RedisStreamsClient``: request/reply, streams and events over Redis Streams.

Replies: each client instance owns a reply stream ``<prefix>reply:<uuid>``, read by one
task with ``XREAD`` (no group: nobody else reads it), that routes replies to waiting
``send`` calls by correlation id. A ``stream`` call gets a reply stream of its own,
deleted when the iteration ends, so the service stops producing for a caller who left.
Reply streams expire ``reply_ttl`` seconds after their reader last touched them, so a
crashed client leaves nothing behind for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from framework import RemoteError, RequestTimeoutError, TransportError
from framework.transports import ClientProxy, decode, encode

from .aio import cancel_and_wait
from .wire import (
    OPEN,
    Fields,
    Reply,
    event_fields,
    parse_reply,
    reply_key,
    request_fields,
    stream_key,
)

logger = logging.getLogger("examples.redis_streams")

_Entries = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]


def _raise_if_cancelled() -> None:
    """Re-raise a cancel that redis-py lost: on Python 3.11 the ``asyncio.wait_for`` it
    wraps around socket reads (``socket_timeout``) swallows a cancel that lands as the
    read completes, and ``stream()`` would read on for a caller who left. The task still
    counts the cancel request (``cancelling()``), so it is not lost for good."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _fields(fields: Fields) -> dict[FieldT, EncodableT]:
    return cast("dict[FieldT, EncodableT]", fields)


class _Call:
    """A ``send`` waiting for its reply: the last value so far and the next index."""

    __slots__ = ("future", "last", "n")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.last: Any = None
        self.n = 0

    def deliver(self, reply: Reply) -> bool:
        """Take one reply entry; True when the call is complete."""
        if self.future.done():
            return True
        try:
            value = _check(reply, self.n)
        except Exception as exc:
            self.future.set_exception(exc)
            return True
        self.n += 1
        if reply.data is not None:
            self.last = value
        if reply.end:
            self.future.set_result(self.last)
        return reply.end


def _check(reply: Reply, expected: int) -> Any:
    """The reply's decoded value; raises for an error reply or a gap in the sequence."""
    if reply.n != expected:
        raise TransportError(
            f"Replies {expected}..{reply.n - 1} were trimmed from the reply stream before "
            "they were read; read faster or raise maxlen on the service"
        )
    if reply.err is not None:
        raise RemoteError(decode(reply.err))
    return decode(reply.data) if reply.data is not None else None


class RedisStreamsClient(ClientProxy):
    """Talk to ``RedisStreamsTransport`` services: ``send``, ``stream``, ``emit``.

    Args:
        url: the Redis server, ``redis://host:port/db``.
        prefix: the services' stream key prefix.
        default_timeout: seconds to wait for a reply (for a stream: for each item) when
            the caller gives no ``timeout``.
        max_pending: requests and streams waiting for replies at once; more raise
            ``TransportError``.
        maxlen: approximate maximum length (``MAXLEN ~``) of the request streams this
            client adds to, in entries. Redis trims the oldest entries past it, read or
            not: size it above the backlog a service may have.
        block: seconds one ``XREAD`` of the reply stream waits.
        batch_size: reply entries read per ``XREAD``.
        reply_ttl: seconds a reply stream outlives its reader (a crashed client's).
        max_connections: Redis connections at most (each running ``stream`` holds one
            while it waits).
        pool_timeout: seconds to wait for a free connection before failing.
        **redis_options: more ``redis.asyncio`` connection options. ``socket_timeout``
            defaults to ``block + 10`` seconds.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "fw:",
        default_timeout: float = 10.0,
        max_pending: int = 10_000,
        maxlen: int = 100_000,
        block: float = 1.0,
        batch_size: int = 100,
        reply_ttl: float = 60.0,
        max_connections: int = 16,
        pool_timeout: float = 10.0,
        **redis_options: Any,
    ) -> None:
        if min(max_pending, maxlen, batch_size) < 1 or max_connections < 2:
            raise ValueError("max_pending, maxlen, batch_size must be >= 1, max_connections >= 2")
        if block <= 0 or reply_ttl < 3 * block:
            raise ValueError("block must be positive and reply_ttl at least 3 * block")
        self.url = url
        self.prefix = prefix
        self.default_timeout = default_timeout
        self.max_pending = max_pending
        self.maxlen = maxlen
        self.block = block
        self.batch_size = batch_size
        self.reply_ttl = reply_ttl
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.redis_options = {"socket_timeout": block + 10, **redis_options}
        self.reply_key = reply_key(prefix, uuid.uuid4().hex)
        self._redis: Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._calls: dict[str, _Call] = {}
        self._streams = 0
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    # -- connection ------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the pool, create the reply stream and start reading it."""
        async with self._lock:
            if self._redis is not None:
                return
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=self.pool_timeout,
                **self.redis_options,
            )
            redis = Redis.from_pool(pool)
            try:
                start = await self._open(redis, self.reply_key)
            except (RedisError, OSError) as exc:
                await redis.aclose()
                raise TransportError(f"Redis at {self.url} is not available: {exc!r}") from exc
            self._redis = redis
            self._reader = asyncio.create_task(self._read(start), name="redis-streams-replies")

    async def _open(self, redis: Redis, key: str) -> bytes:
        """Create reply stream ``key`` (services write with ``NOMKSTREAM``); its first id."""
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, {OPEN: b"1"})
            pipe.expire(key, int(self.reply_ttl))
            first, _ = await pipe.execute()
        return cast(bytes, first)

    async def close(self) -> None:
        """Fail waiting requests, stop reading, delete the reply stream, disconnect."""
        async with self._lock:
            redis, self._redis = self._redis, None
            calls, self._calls = self._calls, {}
            for call in calls.values():
                if not call.future.done():
                    call.future.set_exception(TransportError("The Redis client was closed"))
            reader, self._reader = self._reader, None
            if reader is not None:
                await cancel_and_wait([reader])
            if redis is not None:
                with contextlib.suppress(RedisError, OSError):
                    await redis.delete(self.reply_key)
                await redis.aclose()

    async def _connected(self) -> Redis:
        if self._redis is None:
            await self.connect()
        assert self._redis is not None
        return self._redis

    # -- replies ---------------------------------------------------------------------

    async def _read(self, last: bytes) -> None:
        assert self._redis is not None
        redis, key, calls = self._redis, self.reply_key, self._calls
        refresh_at = time.monotonic() + self.reply_ttl / 3
        failures = 0
        while True:
            try:
                answer: _Entries = await redis.xread(  # type: ignore[assignment]
                    {key: last}, count=self.batch_size, block=int(self.block * 1000)
                )
                if time.monotonic() >= refresh_at:
                    await self._refresh(redis, key, last)
                    refresh_at = time.monotonic() + self.reply_ttl / 3
                failures = 0
            except (RedisError, OSError) as exc:
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                logger.error("Reading Redis replies failed (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                refresh_at = 0.0  # a restarted Redis lost the reply stream: recreate it
                continue
            for _, entries in answer:
                for entry_id, fields in entries:
                    last = entry_id
                    reply = parse_reply(fields)
                    call = calls.get(reply.cid) if reply is not None else None
                    if call is not None and reply is not None and call.deliver(reply):
                        calls.pop(reply.cid, None)

    async def _refresh(self, redis: Redis, key: str, last: bytes) -> None:
        """Keep the reply stream alive and short: extend its expiry, drop what was read;
        recreate it if it expired meanwhile (e.g. after a long pause)."""
        async with redis.pipeline(transaction=False) as pipe:
            pipe.expire(key, int(self.reply_ttl))
            pipe.xtrim(key, minid=last, approximate=False)
            alive, _ = await pipe.execute()
        if not alive:
            await self._open(redis, key)

    # -- ClientProxy -----------------------------------------------------------------

    def _reserve(self) -> str:
        if len(self._calls) + self._streams >= self.max_pending:
            raise TransportError(
                f"{self.max_pending} Redis requests already wait for replies; raise "
                "max_pending or slow down"
            )
        return str(next(self._ids))

    async def send(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send a request and return its reply (the last item, for a stream).

        Raises:
            RemoteError: the service answered with an error.
            RequestTimeoutError: no reply within ``timeout`` seconds.
            TransportError: Redis did not take the request.
        """
        limit = self.default_timeout if timeout is None else timeout
        redis = await self._connected()
        cid = self._reserve()
        call = _Call(asyncio.get_running_loop().create_future())
        self._calls[cid] = call
        deadline = int((time.time() + limit) * 1000)
        fields = request_fields(
            encode(data), cid, self.reply_key, deadline, headers=self.outgoing_headers(headers)
        )
        try:
            async with asyncio.timeout(limit):
                await redis.xadd(
                    stream_key(self.prefix, pattern),
                    _fields(fields),
                    maxlen=self.maxlen,
                    approximate=True,
                )
                return await call.future
        except TimeoutError:
            raise RequestTimeoutError(pattern, limit) from None
        except (RedisError, OSError) as exc:
            raise TransportError(f"Redis request to {pattern!r} failed: {exc!r}") from exc
        finally:
            self._calls.pop(cid, None)

    async def stream(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Any]:
        """Send a request and yield every reply until the end of the stream.

        Raises:
            RemoteError: the service answered with an error (after earlier items).
            RequestTimeoutError: an item took longer than ``timeout`` seconds.
            TransportError: Redis failed, or replies were trimmed before being read.
        """
        limit = self.default_timeout if timeout is None else timeout
        redis = await self._connected()
        cid = self._reserve()
        self._streams += 1
        key = f"{self.reply_key}:{cid}"
        try:
            last = await self._open(redis, key)
            deadline = int((time.time() + limit) * 1000)
            headers = self.outgoing_headers(headers)
            fields = request_fields(encode(data), cid, key, deadline, stream=True, headers=headers)
            await redis.xadd(stream_key(self.prefix, pattern), _fields(fields), maxlen=self.maxlen)
            n = 0
            give_up = time.monotonic() + limit
            refresh_at = time.monotonic() + self.reply_ttl / 3
            while True:
                wait = min(give_up - time.monotonic(), self.block)
                if wait <= 0:
                    raise RequestTimeoutError(pattern, limit)
                answer: _Entries = await redis.xread(  # type: ignore[assignment]
                    {key: last}, count=self.batch_size, block=max(1, int(wait * 1000))
                )
                _raise_if_cancelled()
                if time.monotonic() >= refresh_at:
                    await redis.expire(key, int(self.reply_ttl))
                    refresh_at = time.monotonic() + self.reply_ttl / 3
                for _, entries in answer:
                    for entry_id, entry in entries:
                        last = entry_id
                        reply = parse_reply(entry)
                        if reply is None:
                            continue
                        value = _check(reply, n)
                        n += 1
                        if reply.data is not None:
                            yield value
                        if reply.end:
                            return
                        give_up = time.monotonic() + limit
        except RequestTimeoutError:
            raise  # a TimeoutError, hence an OSError: not a Redis failure
        except (RedisError, OSError) as exc:
            raise TransportError(f"Redis stream from {pattern!r} failed: {exc!r}") from exc
        finally:
            self._streams -= 1
            # Deleting the reply stream tells the service to stop producing.
            with contextlib.suppress(RedisError, OSError):
                await redis.delete(key)

    async def emit(
        self,
        pattern: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Add one event to stream ``<prefix><pattern>``; returns once Redis has it.

        Raises:
            TransportError: Redis did not take the event.
        """
        redis = await self._connected()
        fields = event_fields(encode(data), key, self.outgoing_headers(headers))
        try:
            await redis.xadd(
                stream_key(self.prefix, pattern),
                _fields(fields),
                maxlen=self.maxlen,
                approximate=True,
            )
        except (RedisError, OSError) as exc:
            raise TransportError(f"Redis emit to {pattern!r} failed: {exc!r}") from exc

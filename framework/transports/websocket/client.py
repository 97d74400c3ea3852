"""``WebSocketClient``: a ``ClientProxy`` that calls a WebSocket gateway.

One connection, opened on first use (or ``connect()``); requests carry increasing
integer ids and run concurrently over it. If the connection drops, calls waiting on it
fail with ``TransportError`` and the next call reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import pydantic_core
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from framework.exceptions import RemoteError, RequestTimeoutError, TransportError
from framework.messaging._patterns import matches
from framework.messaging.codecs import encode
from framework.observability._context import trace_headers
from framework.transports.base import ClientProxy, HeaderHook

logger = logging.getLogger("framework.websocket")

_END = object()


class _Call:
    """Replies to one request id: a future (send) or a bounded buffer (stream)."""

    __slots__ = ("buffer", "future", "last", "limit", "wake")

    def __init__(self, loop: asyncio.AbstractEventLoop, stream_buffer: int | None) -> None:
        self.future: asyncio.Future[Any] | None = None if stream_buffer else loop.create_future()
        self.buffer: deque[Any] = deque()
        self.limit = stream_buffer or 0
        self.wake: asyncio.Future[None] | None = None
        self.last: Any = None

    def _put(self, item: Any) -> None:
        if self.limit and len(self.buffer) >= self.limit and item is not _END:
            item = TransportError(
                f"Stream consumer too slow: {self.limit} items waiting; raise stream_buffer"
            )
            self.buffer.clear()
        self.buffer.append(item)
        wake, self.wake = self.wake, None
        if wake is not None and not wake.done():
            wake.set_result(None)

    def on_item(self, data: Any) -> None:
        if self.future is None:
            self._put(data)
        else:
            self.last = data

    def on_value(self, data: Any) -> None:
        if self.future is None:
            self._put(data)
            self._put(_END)
        elif not self.future.done():
            self.future.set_result(data)

    def on_end(self) -> None:
        if self.future is None:
            self._put(_END)
        elif not self.future.done():
            self.future.set_result(self.last)

    def on_error(self, exc: Exception) -> None:
        if self.future is None:
            self._put(exc)
        elif not self.future.done():
            self.future.set_exception(exc)


class WebSocketClient(ClientProxy):
    """Talk to a ``WebSocketTransport`` (or any server speaking its JSON frames).

    Args:
        url: e.g. ``ws://127.0.0.1:8000/ws``.
        default_timeout: seconds to wait for a reply (or each stream item) when a call
            gives no timeout (default 10).
        open_timeout: seconds to open the connection (default 10).
        max_message_size: largest inbound frame in bytes (default 1 MiB).
        stream_buffer: stream items buffered per ``stream()`` call before it fails as
            too slow (default 1024).
        headers: extra HTTP headers for the handshake (e.g. ``Authorization``).
        origin: the ``Origin`` header to send, if any.
        auth: when set, sent as the first frame ``{"event": "auth", "data": auth}`` for
            servers with ``authenticate``.
        ping_interval: seconds between keepalive pings (default 20; ``None`` disables).
        ping_timeout: seconds to wait for a pong (default 20).
    """

    # Trace context goes out wherever the client was made (one ContextVar.get per send,
    # beside a network round trip); the memory client adds it only for a tracing app.
    header_hooks: tuple[HeaderHook, ...] = (trace_headers,)

    def __init__(
        self,
        url: str,
        *,
        default_timeout: float = 10.0,
        open_timeout: float = 10.0,
        max_message_size: int = 1024 * 1024,
        stream_buffer: int = 1024,
        headers: Mapping[str, str] | None = None,
        origin: str | None = None,
        auth: Any = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
    ) -> None:
        self.url = url
        self.default_timeout = default_timeout
        self.open_timeout = open_timeout
        self.max_message_size = max_message_size
        self.stream_buffer = stream_buffer
        self.headers = dict(headers or {})
        self.origin = origin
        self.auth = auth
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._listeners: list[tuple[tuple[str, ...], asyncio.Queue[tuple[str, Any]]]] = []

    def __repr__(self) -> str:
        return f"WebSocketClient({self.url!r})"

    async def __aenter__(self) -> WebSocketClient:
        await self.connect()
        return self

    async def connect(self) -> None:
        await self._connection()

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _connection(self) -> ClientConnection:
        ws = self._ws
        if ws is not None:
            return ws
        async with self._lock:
            if self._ws is not None:
                return self._ws
            try:
                ws = await connect(
                    self.url,
                    open_timeout=self.open_timeout,
                    max_size=self.max_message_size,
                    compression=None,
                    additional_headers=self.headers or None,
                    origin=self.origin,  # type: ignore[arg-type]
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_timeout,
                )
            except (OSError, WebSocketException, TimeoutError) as exc:
                raise TransportError(f"Cannot open a WebSocket to {self.url}: {exc}") from exc
            if self.auth is not None:
                await self._authenticate(ws)
            self._ws = ws
            self._reader = asyncio.get_running_loop().create_task(self._read(ws))
            return ws

    async def _authenticate(self, ws: ClientConnection) -> None:
        refused = TransportError(f"{self.url} refused the credentials")
        try:
            await ws.send(b'{"event":"auth","data":' + encode(self.auth) + b"}", text=True)
            async with asyncio.timeout(self.open_timeout):
                reply = pydantic_core.from_json(await ws.recv(decode=False))
        except (ConnectionClosed, TimeoutError, ValueError) as exc:
            await ws.close()
            raise refused from exc
        if not isinstance(reply, dict) or reply.get("data") is not True:
            await ws.close()
            raise refused

    async def _read(self, ws: ClientConnection) -> None:
        reason = "closed"
        try:
            async for raw in ws:
                try:
                    self._dispatch(pydantic_core.from_json(raw))
                except Exception:
                    logger.warning("Ignoring a frame that is not a JSON object from %s", self.url)
        except ConnectionClosed as exc:
            reason = f"closed with code {exc.rcvd.code if exc.rcvd else 1006}"
        finally:
            if self._ws is ws:
                self._ws = None
            error = TransportError(f"The WebSocket to {self.url} {reason}")
            calls, self._calls = self._calls, {}
            for call in calls.values():
                call.on_error(error)

    def _dispatch(self, frame: Any) -> None:
        event = frame.get("event")
        fid = frame.get("id")
        data = frame.get("data")
        if event == "exception":
            if fid is None and isinstance(data, dict):
                fid = data.get("id")
            call = self._calls.pop(fid, None) if fid is not None else None
            payload = dict(data) if isinstance(data, dict) else data
            if isinstance(payload, dict):
                payload.pop("id", None)
            if call is not None:
                call.on_error(RemoteError(payload))
            else:
                logger.warning("Error from %s: %s", self.url, payload)
            return
        if fid is not None:
            call = self._calls.get(fid)
            if call is None:
                return
            if frame.get("done"):
                del self._calls[fid]
                call.on_end()
            elif frame.get("more"):
                call.on_item(data)
            else:
                del self._calls[fid]
                call.on_value(data)
            return
        for patterns, queue in self._listeners:
            if any(matches(p, event) for p in patterns):
                try:
                    queue.put_nowait((event, data))
                except asyncio.QueueFull:
                    logger.warning("Subscriber queue full; dropping %r", event)

    def _frame(self, pattern: str, data: Any, fid: int | None, headers: Any) -> bytes:
        parts = [b'{"event":', pydantic_core.to_json(pattern), b',"data":', encode(data)]
        if fid is not None:
            parts += [b',"id":', str(fid).encode()]
        headers = self.outgoing_headers(headers)
        if headers:
            parts += [b',"headers":', pydantic_core.to_json(dict(headers))]
        parts.append(b"}")
        return b"".join(parts)

    async def _request(
        self, pattern: str, data: Any, headers: Any, stream_buffer: int | None
    ) -> tuple[int, _Call]:
        ws = await self._connection()
        fid = next(self._ids)
        call = _Call(asyncio.get_running_loop(), stream_buffer)
        self._calls[fid] = call
        try:
            await ws.send(self._frame(pattern, data, fid, headers), text=True)
        except ConnectionClosed as exc:
            self._calls.pop(fid, None)
            raise TransportError(f"The WebSocket to {self.url} closed") from exc
        return fid, call

    async def send(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        limit = self.default_timeout if timeout is None else timeout
        fid, call = await self._request(pattern, data, headers, None)
        assert call.future is not None
        try:
            async with asyncio.timeout(limit):
                return await call.future
        except TimeoutError:
            raise RequestTimeoutError(pattern, limit) from None
        finally:
            self._calls.pop(fid, None)

    async def stream(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[Any, None]:
        limit = self.default_timeout if timeout is None else timeout
        fid, call = await self._request(pattern, data, headers, self.stream_buffer)
        finished = False
        try:
            while True:
                while not call.buffer:
                    call.wake = asyncio.get_running_loop().create_future()
                    try:
                        async with asyncio.timeout(limit):
                            await call.wake
                    except TimeoutError:
                        raise RequestTimeoutError(pattern, limit) from None
                item = call.buffer.popleft()
                if item is _END:
                    finished = True
                    return
                if isinstance(item, Exception):
                    finished = True
                    raise item
                yield item
        finally:
            self._calls.pop(fid, None)
            ws = self._ws
            if not finished and ws is not None:
                # Tell the server to stop a stream the caller walked away from.
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(self._frame("cancel", fid, None, None), text=True)

    async def emit(
        self,
        pattern: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        ws = await self._connection()
        try:
            await ws.send(self._frame(pattern, data, None, headers), text=True)
        except ConnectionClosed as exc:
            raise TransportError(f"The WebSocket to {self.url} closed") from exc

    async def subscribe(
        self, patterns: str | Sequence[str], *, buffer: int = 1024
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """Subscribe to pushed events; yields ``(event, data)`` until the caller stops.

        Events arriving while ``buffer`` of them wait unread are dropped (logged).
        """
        wanted = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(buffer)
        entry = (wanted, queue)
        self._listeners.append(entry)
        try:
            await self.send("subscribe", list(wanted))
            while True:
                yield await queue.get()
        finally:
            self._listeners.remove(entry)
            if self._ws is not None:
                with contextlib.suppress(Exception):
                    await self.send("unsubscribe", list(wanted))

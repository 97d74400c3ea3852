"""A real server for a testing app, and the clients that talk to it over the wire.

``TestingApp.listen()`` serves the app with uvicorn on a free 127.0.0.1 port, through
``Application.server`` (the server ``app.run()`` uses, with the transports' settings), so
WebSocket and SSE tests go through the same HTTP parser, upgrade and streaming code as
production traffic. The clients: the framework's ``WebSocketClient`` for WebSocket, and
``EventStream`` (httpx, parsing ``text/event-stream`` by the WHATWG rules) for SSE.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.exceptions import ConfigurationError

if TYPE_CHECKING:
    import httpx

    from framework.application import Application

START_TIMEOUT_S = 10.0
"""Seconds for the server to start listening, or to finish shutting down."""


def _free_socket(host: str) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it a small response can wait ~40 ms (Nagle against delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


class LiveServer:
    """uvicorn serving a started app on a socket of its own (the CLI's order: the app
    starts first; at the end the server drains and closes, then the app stops)."""

    def __init__(self, app: Application, host: str = "127.0.0.1") -> None:
        self._app = app
        self._sock = _free_socket(host)
        self.url = f"http://{host}:{self._sock.getsockname()[1]}"
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._server = self._app.server(
            lifespan="off", log_level="warning", timeout_graceful_shutdown=1
        )
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        async with asyncio.timeout(START_TIMEOUT_S):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # uvicorn failed: raise why
                    raise ConfigurationError("The test server exited before it started")
                await asyncio.sleep(0.005)  # uvicorn offers no event for "started"

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            try:
                async with asyncio.timeout(START_TIMEOUT_S):
                    await self._task
            finally:
                self._task = None
        self._sock.close()


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One event as ``EventSource`` dispatches it.

    Attributes:
        event: the ``event:`` field, or ``"message"``.
        data: the ``data:`` lines joined with ``\n``.
        id: the last event id seen on the stream (``None`` before any ``id:``).
        retry: the reconnection delay in ms last set by ``retry:``, if any.
    """

    event: str
    data: str
    id: str | None
    retry: int | None

    def json(self) -> Any:
        return json.loads(self.data)


_LINE_END = re.compile(r"\r\n|\r|\n")


class _EventParser:
    """The WHATWG event-stream interpretation: comments skipped, an event without
    ``data:`` lines (a lone ``retry:``) not dispatched, ``id`` kept across events."""

    def __init__(self) -> None:
        self._buffer = ""
        self._after_cr = False
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, text: str) -> list[ReceivedEvent]:
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the \n of a \r\n split across chunks
        self._after_cr = text.endswith("\r")
        *lines, self._buffer = _LINE_END.split(self._buffer + text)
        out: list[ReceivedEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    data = "\n".join(self._data)
                    out.append(ReceivedEvent(self._event or "message", data, self._id, self._retry))
                self._event, self._data = "", []
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
            elif name == "id" and "\0" not in value:
                self._id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self._retry = int(value)
        return out


class EventStream:
    """One ``text/event-stream`` response, read as a browser's ``EventSource`` would.

    Use as ``async with``: entering sends the GET and waits for the response headers (a
    transport subscription is registered by then, so a publish after it is received);
    leaving closes the connection. Comments (heartbeats) are skipped.

    Attributes:
        response: the ``httpx.Response`` (status, headers).
        timeout: default seconds ``next()`` waits for an event.
    """

    def __init__(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._params = dict(params or {})
        self._headers = {"Accept": "text/event-stream", **(headers or {})}
        self.timeout = timeout
        self._stack = contextlib.AsyncExitStack()
        self._chunks: AsyncIterator[str] | None = None
        self._parser = _EventParser()
        self._ready: list[ReceivedEvent] = []
        self._response: httpx.Response | None = None

    @property
    def response(self) -> httpx.Response:
        if self._response is None:
            raise RuntimeError("Open the stream first: `async with t.sse(...) as events:`")
        return self._response

    async def __aenter__(self) -> EventStream:
        import httpx

        try:
            client = await self._stack.enter_async_context(
                httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, read=None))
            )
            response = await self._stack.enter_async_context(
                client.stream("GET", self._url, params=self._params, headers=self._headers)
            )
            self._response = response
            if response.status_code != 200:
                await response.aread()
                response.raise_for_status()
            self._chunks = response.aiter_text()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def next(self, timeout: float | None = None) -> ReceivedEvent:
        """The next event.

        Raises:
            TimeoutError: none arrived within ``timeout`` seconds (default: the
                stream's ``timeout``).
            EOFError: the server ended the stream.
        """
        if self._chunks is None:
            raise RuntimeError("Open the stream first: `async with t.sse(...) as events:`")
        async with asyncio.timeout(self.timeout if timeout is None else timeout):
            while not self._ready:
                try:
                    chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    raise EOFError(f"The server ended the event stream {self._url}") from None
                self._ready.extend(self._parser.feed(chunk))
        return self._ready.pop(0)

    async def take(self, count: int, timeout: float | None = None) -> list[ReceivedEvent]:
        """The next ``count`` events, each within ``timeout`` seconds."""
        return [await self.next(timeout) for _ in range(count)]


def sse_params(subscribe: str | Sequence[str] | None, last_event_id: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if subscribe is not None:
        params["subscribe"] = subscribe if isinstance(subscribe, str) else ",".join(subscribe)
    if last_event_id is not None:
        params["lastEventId"] = last_event_id
    return params

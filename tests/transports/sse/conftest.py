"""Real servers and a small event-stream reader for the SSE tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import uvicorn

from framework import Application, ExecutionContext
from tests.timing import TIME_FACTOR

TIMEOUT = 10 * TIME_FACTOR


def free_socket() -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every response waits ~40 ms (Nagle against the peer's delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(app: Application) -> AsyncIterator[str]:
    """Start ``app`` and serve it with uvicorn on a free 127.0.0.1 port; yield the base URL.

    The app stops before the server, so the SSE transport ends its streams and uvicorn's
    graceful shutdown does not wait on them.
    """
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        http="h11",
        ws="none",
        log_level="warning",
        timeout_graceful_shutdown=int(2 * TIME_FACTOR) or 1,
    )
    server = uvicorn.Server(config)
    await app.start()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        await app.stop()
        server.should_exit = True
        try:
            async with asyncio.timeout(TIMEOUT):
                await task
        finally:
            sock.close()


@dataclass
class Event:
    """One dispatched event as a client sees it (per the WHATWG parsing rules)."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


@dataclass
class Reader:
    """Parses ``text/event-stream`` lines into events and comments, as a browser would."""

    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    last_id: str | None = None
    retry: int | None = None
    _data: list[str] | None = None
    _event: str = ""
    _id: str | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def feed_line(self, line: str) -> None:
        if line == "":
            if self._data is not None:
                self.events.append(
                    Event(self._event or "message", "\n".join(self._data), self.last_id)
                )
                self._changed.set()
            self._data, self._event = None, ""
            return
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            self._changed.set()
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data = [*(self._data or []), value]
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)

    async def wait_for(self, predicate: Callable[[Reader], bool], limit: float = TIMEOUT) -> None:
        async with asyncio.timeout(limit):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


async def read_stream(response: httpx.Response, reader: Reader) -> None:
    """Feed every line of ``response`` to ``reader`` until the server ends it."""
    async for line in response.aiter_lines():
        reader.feed_line(line)


@asynccontextmanager
async def subscribe(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[httpx.Response, Reader, asyncio.Task[None]]]:
    """Open an event stream; yield the response, its reader and the reading task."""
    reader = Reader()
    async with client.stream("GET", url, headers=headers) as response:
        task = asyncio.create_task(read_stream(response, reader))
        try:
            yield response, reader, task
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def wait_until(predicate: Callable[[], bool], limit: float = TIMEOUT) -> None:
    """Poll a condition that has no event to await (a server-side counter), bounded."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - the server exposes a count, not an event
            await asyncio.sleep(0.005)


class LastEventIdLog:
    """A guard that lets everyone in and records the ``Last-Event-ID`` each request sent."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []

    def can_activate(self, ctx: ExecutionContext) -> bool:
        self.ids.append(ctx.context.headers.get("last-event-id"))
        return True


def seq(event_id: str | None) -> str | None:
    """The sequence part of a local event id ("<prefix><n>" -> "n")."""
    return None if event_id is None else event_id.rsplit("-", 1)[-1]

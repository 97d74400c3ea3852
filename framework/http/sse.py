"""The WHATWG event-stream format and a streaming response for ``@sse`` routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from framework.messaging.codecs import encode
from framework.messaging.errors import error_payload

logger = logging.getLogger("framework.sse")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"connection", b"keep-alive"),
]


@dataclass(slots=True)
class ServerSentEvent:
    """One event with explicit fields; any may be left out.

    Attributes:
        data: a string as is; anything else JSON-encoded.
        event: the event type (``addEventListener(type, ...)`` in browsers).
        id: the id browsers send back as ``Last-Event-ID`` on reconnect.
        retry: the reconnection delay in milliseconds.
        comment: a comment line (ignored by clients; keeps proxies from timing out).
    """

    data: Any = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None


def _data_text(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, bytes):
        return data.decode("utf-8")
    return encode(data).decode("utf-8")


def _field(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE field {name!r} cannot contain a line break")
    return f"{name}: {value}\n"


def format_event(item: Any) -> bytes:
    """Encode one item as an event-stream block, ending with the blank line."""
    if not isinstance(item, ServerSentEvent):
        item = ServerSentEvent(data=item)
    out: list[str] = []
    if item.comment is not None:
        out.extend(f": {line}\n" for line in _LINE_BREAK.split(item.comment))
    if item.event is not None:
        out.append(_field("event", item.event))
    if item.id is not None:
        out.append(_field("id", item.id))
    if item.retry is not None:
        out.append(f"retry: {int(item.retry)}\n")
    if item.data is not None:
        out.extend(f"data: {line}\n" for line in _LINE_BREAK.split(_data_text(item.data)))
    out.append("\n")
    return "".join(out).encode("utf-8")


def format_comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


class EventStreamResponse:
    """Streams an async iterator as ``text/event-stream``.

    A heartbeat comment goes out after ``heartbeat`` seconds without an event; a client
    that disconnected is noticed at the latest then, and the iterator is closed (its
    ``finally`` blocks run). An exception inside the iterator ends the stream with an
    ``event: error`` whose data is the safe error body (the traceback goes to the log).
    """

    def __init__(
        self,
        iterator: AsyncIterator[Any],
        *,
        heartbeat: float = 15.0,
        status_code: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
        where: str = "",
    ) -> None:
        self.iterator = iterator
        self.heartbeat = heartbeat
        self.status_code = status_code
        self.headers = [*SSE_HEADERS, *(headers or [])]
        self.where = where

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.headers}
        )
        pump = asyncio.create_task(self._pump(send))
        watch = asyncio.create_task(_wait_disconnect(receive))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)
            close = getattr(self.iterator, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def _pump(self, send: Send) -> None:
        iterator = aiter(self.iterator)
        step: asyncio.Future[Any] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(iterator))
                while True:
                    done, _ = await asyncio.wait({step}, timeout=self.heartbeat)
                    if done:
                        break
                    await _send_body(send, format_comment("ping"))
                try:
                    item = step.result()
                except StopAsyncIteration:
                    break
                await _send_body(send, format_event(item))
        except (OSError, asyncio.CancelledError):
            raise
        except Exception as exc:
            body = error_payload(exc, where=self.where)
            await _send_body(send, format_event(ServerSentEvent(data=body, event="error")))
        finally:
            # A pending step still runs the generator: stop it before aclose() can run.
            if step is not None and not step.done():
                step.cancel()
                with contextlib.suppress(BaseException):
                    await step
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_body(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return

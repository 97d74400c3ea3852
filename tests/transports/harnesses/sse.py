"""Contract harness for the SSE transport: the app under a real uvicorn server, and a
small ``ClientProxy`` over its ``POST <path>/<pattern>`` endpoint (httpx).

SSE has no request/reply client of its own; this one maps the HTTP answers back to what
every transport's client returns: 200 JSON -> the reply, 200 ``text/event-stream`` -> a
stream (``event: error`` ends it with ``RemoteError``), 202 -> an accepted event, an error
status -> ``RemoteError`` with the error body (without the HTTP ``statusCode``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from framework import RemoteError, RequestTimeoutError, create_app
from framework.messaging.codecs import decode, encode
from framework.transports.base import ClientProxy
from framework.transports.sse import SseTransport
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.memory import Served
from tests.transports.sse.conftest import Reader, serving

NAME = "sse"


def _remote_error(response: httpx.Response) -> RemoteError:
    body = response.json()
    if isinstance(body, dict):
        body.pop("statusCode", None)
    return RemoteError(body)


class SseHttpClient(ClientProxy):
    def __init__(self, base: str, client: httpx.AsyncClient) -> None:
        self.base = base
        self.client = client

    async def send(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        last = None
        async for item in self.stream(pattern, data, timeout=timeout, headers=headers):
            last = item
        return last

    async def stream(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Any]:
        url = f"{self.base}/{pattern}"
        try:
            async with self.client.stream(
                "POST", url, content=encode(data), headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _remote_error(response)
                if not response.headers["content-type"].startswith("text/event-stream"):
                    await response.aread()
                    yield response.json()
                    return
                reader = Reader()
                async for line in response.aiter_lines():
                    reader.feed_line(line)
                    while reader.events:
                        event = reader.events.pop(0)
                        if event.event == "error":
                            raise RemoteError(decode(event.data))
                        yield decode(event.data)
        except httpx.TimeoutException:
            raise RequestTimeoutError(pattern, timeout or 0) from None

    async def emit(
        self,
        pattern: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        response = await self.client.post(
            f"{self.base}/{pattern}", content=encode(data), headers=headers
        )
        if response.status_code >= 400:
            raise _remote_error(response)


@asynccontextmanager
async def serve(root_module: Any, **transport_options: Any) -> AsyncIterator[Served]:
    """Start ``root_module`` with an ``SseTransport`` on "/events"; yield a client."""
    app = create_app(root_module, transports=[SseTransport("/events", **transport_options)])
    async with serving(app) as url, httpx.AsyncClient(timeout=10 * TIME_FACTOR) as http:
        yield Served(app, SseHttpClient(f"{url}/events", http), "sse")

"""``@sse`` routes served by uvicorn and read by httpx: format, heartbeat, disconnect
cleanup, errors before and after the stream started, and the slow-client drop."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from framework import (
    ExecutionContext,
    NotFoundException,
    RpcException,
    ServerSentEvent,
    controller,
    create_app,
    injectable,
    module,
    sse,
    use_filters,
    use_guards,
)
from tests.timing import TIME_FACTOR
from tests.transports.sse.conftest import (
    TIMEOUT,
    Reader,
    free_socket,
    serving,
    subscribe,
    wait_until,
)


class Order(BaseModel):
    id: int
    total: float


@injectable()
class Probe:
    """What the tests observe from inside the handlers."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finalized = asyncio.Event()
        self.release = asyncio.Event()


class KeyGuard:
    def can_activate(self, ctx: ExecutionContext) -> bool:
        return bool(ctx.headers.get("x-key") == "open")


class ConflictFilter:
    exception_types = (LookupError,)

    def catch(self, exc: Exception, ctx: ExecutionContext) -> Response:
        return JSONResponse({"caught": str(exc)}, status_code=409)


@controller("/feed")
class FeedController:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    @sse("/orders")
    async def orders(self) -> AsyncIterator[object]:
        yield Order(id=1, total=9.5)
        yield {"multi": "line"}
        yield "first\nsecond"
        yield ServerSentEvent(data={"id": 2}, event="order", id="2", retry=1000, comment="c")

    @sse("/held", heartbeat=0.2)
    async def held(self) -> AsyncIterator[dict[str, int]]:
        try:
            yield {"n": 1}
            self.probe.started.set()
            await self.probe.release.wait()
            yield {"n": 2}
        finally:
            self.probe.finalized.set()

    @sse("/broken")
    async def broken(self) -> AsyncIterator[dict[str, int]]:
        yield {"n": 1}
        raise RuntimeError("database password is hunter2")

    @sse("/rejected")
    async def rejected(self) -> AsyncIterator[dict[str, int]]:
        yield {"n": 1}
        raise RpcException("order 7 is closed")

    @sse("/guarded")
    @use_guards(KeyGuard())
    async def guarded(self) -> AsyncIterator[str]:
        yield "secret"

    @sse("/missing/{order_id}")
    async def missing(self, order_id: int) -> AsyncIterator[str]:
        # A coroutine that returns the iterator can refuse with a status code.
        if order_id != 1:
            raise NotFoundException(f"No order {order_id}")
        return _one("found")

    @sse("/filtered")
    @use_filters(ConflictFilter())
    async def filtered(self) -> AsyncIterator[str]:
        raise LookupError("taken")

    @sse("/firehose", max_buffer=4, heartbeat=60)
    async def firehose(self) -> AsyncIterator[str]:
        try:
            while True:
                yield "x" * 65536
        finally:
            self.probe.finalized.set()


async def _one(value: str) -> AsyncIterator[str]:
    yield value


@module(controllers=[FeedController], providers=[Probe])
class FeedModule:
    pass


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Probe]]:
    app = create_app(FeedModule)
    async with serving(app) as url:
        yield url, app.get(Probe)


async def test_items_become_events_in_the_whatwg_format(served: tuple[str, Probe]) -> None:
    url, _ = served
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        response = await client.get(f"{url}/feed/orders")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.content == (
        b'data: {"id":1,"total":9.5}\n\n'
        b'data: {"multi":"line"}\n\n'
        b"data: first\ndata: second\n\n"
        b': c\nevent: order\nid: 2\nretry: 1000\ndata: {"id":2}\n\n'
    )


async def test_heartbeat_and_disconnect_close_the_iterator(served: tuple[str, Probe]) -> None:
    url, probe = served
    async with (
        httpx.AsyncClient(timeout=TIMEOUT) as client,
        subscribe(client, f"{url}/feed/held") as (_, reader, _task),
    ):
        await reader.wait_for(lambda r: len(r.events) == 1 and "ping" in r.comments)
        assert json.loads(reader.events[0].data) == {"n": 1}
        assert not probe.finalized.is_set()
    # The client went away: the server notices within one heartbeat (0.2 s) and closes
    # the generator, running its finally block; no task of the stream is left behind.
    async with asyncio.timeout((0.2 + 0.5) * TIME_FACTOR):
        await probe.finalized.wait()
    await wait_until(lambda: not _stream_tasks())


def _stream_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("sse-")]


async def test_error_after_start_ends_with_a_safe_error_event(
    served: tuple[str, Probe], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = served
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(f"{url}/feed/broken")
    assert response.status_code == 200
    reader = Reader()
    for line in response.text.splitlines():
        reader.feed_line(line)
    reader.feed_line("")
    assert [e.event for e in reader.events] == ["message", "error"]
    assert json.loads(reader.events[1].data) == {
        "status": "error",
        "message": "Internal server error",
    }
    assert "hunter2" not in response.text
    failures = [r for r in caplog.records if r.exc_info and "hunter2" in str(r.exc_info[1])]
    assert failures, "the unexpected error is logged with its traceback"


async def test_deliberate_error_after_start_is_sent_as_is(served: tuple[str, Probe]) -> None:
    url, _ = served
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        response = await client.get(f"{url}/feed/rejected")
    assert response.text.endswith(
        'event: error\ndata: {"status":"error","message":"order 7 is closed"}\n\n'
    )


async def test_errors_before_start_are_http_status_codes(served: tuple[str, Probe]) -> None:
    url, _ = served
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        refused = await client.get(f"{url}/feed/guarded")
        allowed = await client.get(f"{url}/feed/guarded", headers={"x-key": "open"})
        missing = await client.get(f"{url}/feed/missing/2")
        found = await client.get(f"{url}/feed/missing/1")
        invalid = await client.get(f"{url}/feed/missing/abc")
        filtered = await client.get(f"{url}/feed/filtered")
    assert refused.status_code == 403
    assert refused.json()["message"] == "Forbidden resource"
    assert allowed.status_code == 200 and allowed.text == "data: secret\n\n"
    assert missing.status_code == 404 and missing.json()["message"] == "No order 2"
    assert found.text == "data: found\n\n"
    assert invalid.status_code == 422
    assert filtered.status_code == 409 and filtered.json() == {"caught": "taken"}


async def test_a_client_that_stops_reading_is_dropped_and_others_go_on(
    served: tuple[str, Probe],
) -> None:
    url, probe = served
    port = int(url.rsplit(":", 1)[1])
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(stalled, ("127.0.0.1", port))
        await loop.sock_sendall(stalled, b"GET /feed/firehose HTTP/1.1\r\nHost: x\r\n\r\n")
        # It never reads: its socket fills, then its buffer of 4 events, then it is dropped
        # and the generator feeding it is closed.
        async with asyncio.timeout(TIMEOUT):
            await probe.finalized.wait()
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(f"{url}/feed/orders")
        assert response.status_code == 200 and response.text.count("data:") == 5
    finally:
        stalled.close()


async def test_close_route_streams_ends_open_streams_for_shutdown() -> None:
    app = create_app(FeedModule)
    async with (
        serving(app) as url,
        httpx.AsyncClient(timeout=TIMEOUT) as client,
        subscribe(client, f"{url}/feed/held") as (_, reader, task),
    ):
        probe = app.get(Probe)
        await reader.wait_for(lambda r: len(r.events) == 1)
        assert app.route_streams.close() == 1
        async with asyncio.timeout(TIMEOUT):
            await task  # the response ended: the client's read loop finishes
            await probe.finalized.wait()


async def test_server_shutdown_ends_route_streams_instead_of_waiting_on_them() -> None:
    app = create_app(FeedModule)
    sock = free_socket()
    server = app.server("127.0.0.1", sock.getsockname()[1], log_level="warning")
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started or task.done())
        probe = app.get(Probe)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with (
            httpx.AsyncClient(timeout=TIMEOUT) as client,
            subscribe(client, f"{url}/feed/held") as (_, reader, reading),
        ):
            await reader.wait_for(lambda r: len(r.events) == 1)
            server.should_exit = True  # what SIGTERM does
            # uvicorn waits for open responses (forever by default): the app's drain
            # must end the stream for the shutdown to finish.
            async with asyncio.timeout(5 * TIME_FACTOR):
                await reading
                await task
            assert probe.finalized.is_set()
    finally:
        server.should_exit = True
        async with asyncio.timeout(TIMEOUT):
            await task
        sock.close()

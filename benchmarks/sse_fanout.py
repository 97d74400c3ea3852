"""SSE fan-out: one publish delivered to 1,000 and 5,000 concurrent event streams.

Servers (each on uvicorn/h11 in this process, one after the other):
- framework: ``SseTransport`` + ``app.publish`` (encode once, bounded buffer per client).
- bare: a starlette ``StreamingResponse`` per client fed by an unbounded ``asyncio.Queue``;
  publish encodes the block once and ``put_nowait``s it to every queue.
- sse-starlette: its ``EventSourceResponse`` over the same queues (if installed), given
  the same pre-encoded bytes.

Clients: a subprocess holding N raw asyncio sockets that count ``data:`` lines, so the
client side costs little per event. Measured:
- latency: publish -> the last of N clients has the event (best of 10 publishes);
- throughput: a burst of events published back to back, N x events / time until the last
  client has the last one (best of 2 bursts).

Run: ``python benchmarks/sse_fanout.py [--clients 1000,5000] [--burst 20]``.
Target: framework >= 0.9 x bare on both measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

MARK = b"data: "
LATENCY_ROUNDS = 5
REPEATS = 2


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the client process -------------------------------------------------------------------


class _Reader(asyncio.Protocol):
    """One stream: counts ``data:`` lines and reports each new count to the tally."""

    def __init__(self, tally: _Tally, request: bytes, opened: asyncio.Future[None]) -> None:
        self.tally = tally
        self.request = request
        self.opened = opened
        self.count = 0
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.opened.set_result(None)
        chunk = self.tail + data
        new = chunk.count(MARK) - self.tail.count(MARK)
        self.tail = chunk[-(len(MARK) - 1) :]
        if new:
            before = self.count
            self.count += new
            self.tally.add(before, self.count)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the response"))


class _Tally:
    """How many streams have seen event k; prints when all of them have."""

    def __init__(self, streams: int) -> None:
        self.streams = streams
        self.seen: list[int] = [0]

    def add(self, before: int, after: int) -> None:
        seen = self.seen
        while len(seen) <= after:
            seen.append(0)
        now = time.monotonic()
        for k in range(before + 1, after + 1):
            seen[k] += 1
            if seen[k] == self.streams:
                print(json.dumps({"k": k, "t": now}), flush=True)


async def run_clients(port: int, streams: int, path: str) -> None:
    loop = asyncio.get_running_loop()
    tally = _Tally(streams)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    gate = asyncio.Semaphore(500)
    transports: list[asyncio.BaseTransport] = []

    async def open_one() -> None:
        async with gate:
            opened: asyncio.Future[None] = loop.create_future()
            transport, _ = await loop.create_connection(
                lambda: _Reader(tally, request.encode(), opened), "127.0.0.1", port
            )
            transports.append(transport)
            await opened

    await asyncio.gather(*(open_one() for _ in range(streams)))
    print(json.dumps({"connected": streams}), flush=True)
    # Hold the streams until the driver closes our stdin.
    await loop.run_in_executor(None, sys.stdin.read)
    for transport in transports:
        transport.close()


# -- the servers ----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    app: Any
    path: str
    publish: Callable[[int], Awaitable[None]]
    subscribers: Callable[[], int]
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


def _payload(k: int) -> dict[str, Any]:
    return {"k": k, "order": {"id": k, "customer": "ada", "total": 12.5}}


def framework_server() -> Server:
    from framework import controller, create_app, module
    from framework.transports.sse import SseTransport

    @controller()
    class Nothing:
        pass

    @module(controllers=[Nothing])
    class Root:
        pass

    transport = SseTransport("/events", max_subscribers=20_000)
    app = create_app(Root, transports=[transport])

    async def publish(k: int) -> None:
        await app.publish("bench", _payload(k))

    return Server(
        "framework",
        app,
        "/events?subscribe=bench",
        publish,
        lambda: transport.subscriber_count,
        app.start,
        app.stop,
    )


def _queue_server(name: str, respond: Callable[[AsyncIterator[bytes]], Any]) -> Server:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    from framework.http._sse import encode_event
    from framework.messaging.codecs import encode

    queues: set[asyncio.Queue[bytes]] = set()

    async def events(request: Request) -> Any:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        queues.add(queue)

        async def stream() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield await queue.get()
            finally:
                queues.discard(queue)

        return respond(stream())

    async def publish(k: int) -> None:
        block = encode_event(encode(_payload(k)), event="bench", id=str(k))
        for queue in queues:
            queue.put_nowait(block)

    async def nothing() -> None:
        return None

    app = Starlette(routes=[Route("/events", events)])
    return Server(name, app, "/events", publish, lambda: len(queues), nothing, nothing)


def bare_server() -> Server:
    from starlette.responses import StreamingResponse

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return _queue_server(
        "bare",
        lambda it: StreamingResponse(it, media_type="text/event-stream", headers=headers),
    )


def sse_starlette_server() -> Server | None:
    try:
        from sse_starlette import EventSourceResponse
    except ImportError:
        return None
    return _queue_server("sse-starlette", lambda it: EventSourceResponse(it, ping=15))


# -- the driver -----------------------------------------------------------------------------


@dataclass
class Result:
    latency_ms: float
    events_per_s: float


async def _serve(server: Server) -> tuple[Any, asyncio.Task[None], int, socket.socket]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # Nagle off
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        server.app,
        lifespan="off",
        http="h11",
        ws="none",
        log_level="error",
        access_log=False,
        backlog=4096,
        timeout_graceful_shutdown=5,
    )
    uv = uvicorn.Server(config)
    await server.start()
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    return uv, task, sock.getsockname()[1], sock


async def measure(server: Server, streams: int, burst: int) -> Result:
    uv, task, port, sock = await _serve(server)
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        str(port),
        str(streams),
        server.path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert client.stdout is not None and client.stdin is not None
    done: dict[int, float] = {}
    arrived = asyncio.Event()

    async def read_reports() -> None:
        assert client.stdout is not None
        while line := await client.stdout.readline():
            report = json.loads(line)
            if "k" in report:
                done[report["k"]] = report["t"]
                arrived.set()

    async def until_done(k: int) -> float:
        while k not in done:
            arrived.clear()
            await arrived.wait()
        return done[k]

    reader = asyncio.create_task(read_reports())
    try:
        async with asyncio.timeout(60):
            while server.subscribers() < streams:  # noqa: ASYNC110 - a count, not an event
                await asyncio.sleep(0.05)
        latencies: list[float] = []
        rates: list[float] = []
        k = 0
        async with asyncio.timeout(90):
            # Interleaved repeats; the best of each is kept (noise only slows things).
            for _ in range(REPEATS):
                for _ in range(LATENCY_ROUNDS):
                    k += 1
                    sent = time.monotonic()
                    await server.publish(k)
                    latencies.append(await until_done(k) - sent)
                started = time.monotonic()
                for _ in range(burst):
                    k += 1
                    await server.publish(k)
                rates.append(streams * burst / (await until_done(k) - started))
        return Result(min(latencies) * 1000, max(rates))
    finally:
        client.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await client.wait()
        if client.returncode is None:
            client.kill()
        reader.cancel()
        await server.stop()
        uv.should_exit = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await task
        sock.close()


async def main(counts: list[int], burst: int) -> int:
    limit = raise_fd_limit()
    needed = 2 * max(counts) + 100
    if limit < needed:
        print(f"RLIMIT_NOFILE is {limit}; {needed} descriptors are needed")
        return 1
    builders: list[Callable[[], Server | None]] = [
        framework_server,
        bare_server,
        sse_starlette_server,
    ]
    try:
        from importlib.metadata import version

        ss_version = version("sse-starlette")
    except Exception:
        ss_version = "not installed"
    print(f"sse-starlette: {ss_version}; clients in a subprocess; uvicorn h11; 1 event = ~90 B")
    ok = True
    for streams in counts:
        results: dict[str, Result] = {}
        for build in builders:
            server = build()
            if server is None:
                continue
            results[server.name] = await measure(server, streams, burst)
        bare = results["bare"]
        print(f"\n{streams} concurrent streams (burst of {burst} events):")
        for name, r in results.items():
            print(
                f"  {name:14s} last client has it after {r.latency_ms:8.1f} ms   "
                f"{r.events_per_s:10,.0f} events/s   "
                f"ratio vs bare: latency {bare.latency_ms / r.latency_ms:.2f}, "
                f"throughput {r.events_per_s / bare.events_per_s:.2f}"
            )
        ours = results["framework"]
        for label, ratio in (
            ("latency", bare.latency_ms / ours.latency_ms),
            ("throughput", ours.events_per_s / bare.events_per_s),
        ):
            verdict = "OK" if ratio >= 0.9 else "BELOW TARGET"
            print(f"  framework/bare {label}: {ratio:.2f} (target >= 0.9) {verdict}")
            ok = ok and ratio >= 0.9
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        raise_fd_limit()
        asyncio.run(run_clients(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
        sys.exit(0)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1000,5000", help="comma-separated stream counts")
    parser.add_argument("--burst", type=int, default=20, help="events in the throughput burst")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    sys.exit(asyncio.run(main(counts, args.burst)))

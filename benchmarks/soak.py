"""Soak: mixed Kafka, WebSocket, Socket.IO and SSE traffic for minutes, with slow and
disconnecting clients; fails if the server's memory or file descriptors keep growing.

The server is one app process (the transports of the example app, a small send queue so
slow readers get dropped) on a real Apache Kafka broker (``$KAFKA_BOOTSTRAP_SERVERS`` or
a local one started for the run). The driver, in this process, keeps up:

- Kafka: events produced to ``soak.orders`` (each one is published by the app to every
  subscriber below) and request/reply calls through ``KafkaClient``;
- WebSocket: requesters that reconnect every few hundred requests, subscribers that read,
  and every few seconds a batch of subscribers that never read (dropped by the server)
  and then vanish;
- Socket.IO: clients acking requests and reading published events, reconnecting now and
  then;
- SSE: readers that reconnect, and readers that never read.

Every ``--every`` seconds it prints the server's RSS and open file descriptors. After the
warm-up (the first sample), the run fails if RSS grows by more than ``--max-growth`` MiB
or the descriptors by more than 64 (what the clients still hold aside).

Run: ``make soak`` or ``python benchmarks/soak.py [--minutes 5] [--every 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._kafka import create_topic, kafka_cluster, unique
from benchmarks.ws_echo import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
ORDERS = "soak.orders"


# -- the server (a child process) ----------------------------------------------------------


def serve(port: int, bootstrap: str, topic: str, group: str) -> None:
    from pydantic import BaseModel

    from framework import Application, create_app, event_pattern, message_pattern, module
    from framework.transports.kafka import KafkaTransport
    from framework.transports.socketio import SocketIoTransport, websocket_gateway
    from framework.transports.sse import SseTransport
    from framework.transports.websocket import WebSocketTransport

    class Order(BaseModel):
        id: int
        total: float

    @websocket_gateway()
    class SoakGateway:
        def __init__(self, app: Application) -> None:
            self.app = app

        @message_pattern("soak.get")
        async def get(self, order: Order) -> Order:
            return order

        @event_pattern(topic, transports=["kafka"])
        async def on_order(self, order: Order) -> None:
            await self.app.publish("orders.created", order)

    @module(providers=[SoakGateway])
    class SoakModule:
        pass

    app = create_app(
        SoakModule,
        transports=[
            WebSocketTransport("/ws", send_queue=64),
            SocketIoTransport(send_queue=64, ping_interval=5, ping_timeout=5),
            SseTransport("/events", max_buffer=64),
            KafkaTransport(bootstrap_servers=bootstrap, group_id=group, topics=[topic]),
        ],
    )
    app.run("127.0.0.1", port, log_level="error")


# -- the driver ----------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    def __init__(self, port: int, bootstrap: str, topic: str, deadline: float) -> None:
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"
        self.bootstrap = bootstrap
        self.topic = topic
        self.deadline = deadline
        self.counts: Counter[str] = Counter()

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def forever(self, name: str, step: Any) -> None:
        """Run ``step()`` until the deadline; errors are counted, the loop goes on."""
        while self.running():
            try:
                await step()
            except Exception as exc:
                self.counts[f"{name} error {type(exc).__name__}"] += 1
                await asyncio.sleep(0.2)

    # Kafka ------------------------------------------------------------------------

    async def kafka_producer(self) -> None:
        from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        n = 0
        try:
            while self.running():
                n += 1
                value = json.dumps({"id": n, "total": 1.5}).encode()
                await producer.send_and_wait(self.topic, value)
                self.counts["kafka events"] += 1
                await asyncio.sleep(0.02)
        finally:
            await producer.stop()

    async def kafka_requests(self) -> None:
        from framework.transports.kafka import KafkaClient

        async with KafkaClient(bootstrap_servers=self.bootstrap) as client:

            async def step() -> None:
                reply = await client.send("soak.get", {"id": 1, "total": 2.0}, timeout=10)
                assert reply == {"id": 1, "total": 2.0}
                self.counts["kafka replies"] += 1
                await asyncio.sleep(0.05)

            await self.forever("kafka requests", step)

    # WebSocket --------------------------------------------------------------------

    async def ws_requester(self) -> None:
        import websockets

        async def step() -> None:
            async with websockets.connect(self.ws + "/ws", compression=None) as ws:
                for i in range(random.randint(50, 300)):
                    frame = {"event": "soak.get", "data": {"id": i, "total": 1.0}, "id": i}
                    await ws.send(json.dumps(frame))
                    while json.loads(await ws.recv()).get("id") != i:
                        pass
                    self.counts["ws replies"] += 1
                    if not self.running():
                        return

        await self.forever("ws requester", step)

    async def ws_subscriber(self) -> None:
        import websockets

        async def step() -> None:
            async with websockets.connect(self.ws + "/ws", compression=None) as ws:
                await ws.send(json.dumps({"event": "subscribe", "data": ["orders.*"]}))
                end = time.monotonic() + random.uniform(5, 20)
                while time.monotonic() < end and self.running():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1):
                            await ws.recv()
                            self.counts["ws pushes"] += 1

        await self.forever("ws subscriber", step)

    async def ws_slow_batch(self) -> None:
        """Subscribers that never read: the server drops them; they vanish after 10 s."""
        import websockets

        async def step() -> None:
            socks = []
            for _ in range(5):
                ws = await websockets.connect(self.ws + "/ws", compression=None, max_queue=1)
                await ws.send(json.dumps({"event": "subscribe", "data": ["orders.*"]}))
                socks.append(ws)
            self.counts["ws slow clients"] += len(socks)
            await asyncio.sleep(10)
            for ws in socks:
                ws.transport.abort()

        await self.forever("ws slow", step)

    # Socket.IO --------------------------------------------------------------------

    async def sio_client(self) -> None:
        import websockets

        url = self.ws + "/socket.io/?EIO=4&transport=websocket"

        async def step() -> None:
            async with websockets.connect(url, compression=None) as ws:
                await ws.recv()  # the Engine.IO OPEN packet
                await ws.send("40")
                await ws.send('420["subscribe",["orders.*"]]')
                for i in range(1, random.randint(50, 300)):
                    await ws.send(f'42{i}["soak.get",{{"id":{i},"total":1.0}}]')
                    while True:
                        frame = await ws.recv()
                        if frame == "2":
                            await ws.send("3")
                        elif frame.startswith(f"43{i}["):
                            self.counts["socket.io acks"] += 1
                            break
                        elif frame.startswith('42["orders.created"'):
                            self.counts["socket.io pushes"] += 1
                    if not self.running():
                        return

        await self.forever("socket.io", step)

    # SSE --------------------------------------------------------------------------

    async def sse_reader(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=None) as http:

            async def step() -> None:
                url = self.http + "/events?subscribe=orders.*"
                async with http.stream("GET", url) as response:
                    end = time.monotonic() + random.uniform(5, 20)
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            self.counts["sse events"] += 1
                        if time.monotonic() > end or not self.running():
                            return

            await self.forever("sse reader", step)

    async def sse_slow_batch(self) -> None:
        """Streams that never read: the server drops them; they vanish after 10 s."""
        host, port = "127.0.0.1", int(self.http.rsplit(":", 1)[1])

        async def step() -> None:
            writers = []
            for _ in range(5):
                _, writer = await asyncio.open_connection(host, port)
                request = f"GET /events?subscribe=orders.* HTTP/1.1\r\nHost: {host}\r\n\r\n"
                writer.write(request.encode())
                writers.append(writer)
            self.counts["sse slow clients"] += len(writers)
            await asyncio.sleep(10)
            for writer in writers:
                writer.transport.abort()

        await self.forever("sse slow", step)


async def drive(port: int, bootstrap: str, topic: str, args: argparse.Namespace, pid: int) -> int:
    soak = Soak(port, bootstrap, topic, time.monotonic() + args.minutes * 60)
    tasks = [
        soak.kafka_producer(),
        soak.kafka_requests(),
        *(soak.ws_requester() for _ in range(10)),
        *(soak.ws_subscriber() for _ in range(10)),
        soak.ws_slow_batch(),
        *(soak.sio_client() for _ in range(10)),
        *(soak.sse_reader() for _ in range(10)),
        soak.sse_slow_batch(),
    ]
    running = [asyncio.create_task(t) for t in tasks]
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    print(f"{'minute':>6} {'RSS MiB':>8} {'fds':>5}  counts")
    try:
        while soak.running():
            rss, fds = rss_mib(pid), open_fds(pid)
            samples.append((rss, fds))
            minute = (time.monotonic() - start) / 60
            busiest = ", ".join(f"{k} {v}" for k, v in sorted(soak.counts.items()))
            print(f"{minute:6.1f} {rss:8.1f} {fds:5d}  {busiest}", flush=True)
            await asyncio.sleep(min(args.every, max(0.0, soak.deadline - time.monotonic())))
    finally:
        await asyncio.gather(*running, return_exceptions=True)
    await asyncio.sleep(2)  # let the server notice the last disconnects
    rss, fds = rss_mib(pid), open_fds(pid)
    print(f"{'end':>6} {rss:8.1f} {fds:5d}  {dict(soak.counts)}")
    warm = samples[1] if len(samples) > 1 else samples[0]
    grew, more_fds = rss - warm[0], fds - warm[1]
    bound = args.max_growth
    print(f"after warm-up: RSS {grew:+.1f} MiB (bound {bound}), fds {more_fds:+d} (bound 64)")
    errors = {k: v for k, v in soak.counts.items() if "error" in k}
    if errors:
        print(f"client-side errors (connections the server dropped count here): {errors}")
    return 0 if grew <= args.max_growth and more_fds <= 64 else 1


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--max-growth", type=float, default=48.0, help="MiB after warm-up")
    args = parser.parse_args()
    with kafka_cluster() as bootstrap:
        topic = unique(ORDERS)
        asyncio.run(create_topic(bootstrap, topic, 1))
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, __file__, "--serve", str(port), bootstrap, topic, unique("soak")]
        server = subprocess.Popen(cmd, env=env, cwd=ROOT)
        try:
            wait_port(port, timeout=60)
            time.sleep(2)  # the Kafka consumer joins its group
            code = asyncio.run(drive(port, bootstrap, topic, args, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
    raise SystemExit(code)


if __name__ == "__main__":
    main()

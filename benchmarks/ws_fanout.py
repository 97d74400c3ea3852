"""WebSocket fan-out: time to deliver one broadcast to N clients, and memory per idle
connection.

Servers (each in its own process, pinned to one CPU; the Node clients on the other):

- framework (ASGI): ``app.publish("bench.tick", ...)`` from a gateway handler, to
  sockets subscribed with ``{"event": "subscribe", "data": ["bench.tick"]}``, served by
  ``app.server()`` on the app's HTTP port (uvicorn hands the upgrades to picows);
- framework (standalone): the same with ``WebSocketTransport(port=...)``;
- bare websockets: a set of connections and ``websockets.broadcast`` (synchronous
  writes, no queues, no back-pressure);
- bare starlette: a set of starlette WebSockets and ``await ws.send_text`` for each;
- NestJS: a NestJS 11 gateway on ``@nestjs/platform-ws`` whose ``bench.fire`` handler
  does ``server.clients.forEach(c => c.send(tick))`` (``benchmarks/nestjs/gateway.js``).

The Python servers run on the loop ``app.run()`` picks (uvloop when installed).

Each client subscribes and waits for the acknowledgement; then one extra connection
sends the trigger and the load generator (benchmarks/node/load.mjs, Node ``ws``) times
until every client has the event. Memory per connection is the server's RSS growth from
before the clients connect to when all are connected and subscribed, divided by N.

Run: ``python benchmarks/ws_fanout.py [clients ...]`` (default 1000 5000). Targets: memory
per idle connection < 50 KiB at 5,000 (compression off, the default); the broadcast at
least as fast as NestJS's.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from benchmarks._util import Results, loop_name, pop_json, run_on_loop
from benchmarks.ws_echo import (
    NODE_DIR,
    ROOT,
    UVICORN,
    free_port,
    pinned,
    server_command,
    wait_port,
)
from framework import Application, create_app, module
from framework.transports.websocket import (
    WebSocketTransport,
    subscribe_message,
    websocket_gateway,
)

ROUNDS = 3
SUBSCRIBE = json.dumps({"event": "subscribe", "data": ["bench.tick"], "id": 1})
TRIGGER = json.dumps({"event": "bench.fire", "data": {"n": 1}})
TICK = {"price": 101.5, "sku": "ABC-123", "note": "x" * 64}


class Fire(BaseModel):
    n: int


@websocket_gateway()
class FanoutGateway:
    def __init__(self, app: Application) -> None:
        self.app = app

    @subscribe_message("bench.fire")
    async def fire(self, fire: Fire) -> None:
        await self.app.publish("bench.tick", TICK)


@module(providers=[FanoutGateway])
class FanoutModule:
    pass


def framework_app(port: int | None) -> Application:
    transport = WebSocketTransport("/ws", port=port, max_subscriptions=10)
    return create_app(FanoutModule, transports=[transport])


async def serve(kind: str, port: int) -> None:
    if kind == "framework-asgi":
        # The framework's own uvicorn settings: its paths on picows.
        options = {"log_level": "warning", "backlog": 4096}
        await framework_app(None).server("127.0.0.1", port, **options).serve()
    elif kind == "framework-standalone":
        async with framework_app(port):
            await asyncio.Event().wait()
    elif kind == "bare-websockets":
        from websockets.asyncio.server import ServerConnection, broadcast
        from websockets.asyncio.server import serve as ws_serve
        from websockets.exceptions import ConnectionClosed

        subscribers: set[ServerConnection] = set()
        tick = json.dumps({"event": "bench.tick", "data": TICK})

        async def handler(ws: ServerConnection) -> None:
            try:
                async for message in ws:
                    frame = json.loads(message)
                    if frame["event"] == "subscribe":
                        subscribers.add(ws)
                        await ws.send(json.dumps({"event": "subscribe", "data": frame["data"]}))
                    elif frame["event"] == "bench.fire":
                        broadcast(subscribers, tick)
            except ConnectionClosed:
                pass
            finally:
                subscribers.discard(ws)

        async with ws_serve(handler, "127.0.0.1", port, compression=None, backlog=4096):
            await asyncio.Event().wait()
    elif kind == "bare-starlette":
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute
        from starlette.websockets import WebSocket, WebSocketDisconnect

        members: set[WebSocket] = set()
        text = json.dumps({"event": "bench.tick", "data": TICK})

        async def endpoint(ws: WebSocket) -> None:
            await ws.accept()
            try:
                while True:
                    frame = json.loads(await ws.receive_text())
                    if frame["event"] == "subscribe":
                        members.add(ws)
                        await ws.send_text(json.dumps({"event": "subscribe"}))
                    elif frame["event"] == "bench.fire":
                        for member in list(members):
                            await member.send_text(text)
            except WebSocketDisconnect:
                pass
            finally:
                members.discard(ws)

        app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
        config = uvicorn.Config(app, "127.0.0.1", port, backlog=4096, **UVICORN)
        await uvicorn.Server(config).serve()
    else:
        raise SystemExit(f"unknown server {kind}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def run(kind: str, clients: int) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd, cwd = server_command(kind, port, "fanout")
    server = subprocess.Popen(
        pinned(cmd, 0),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        time.sleep(0.3)
        before = rss_kib(server.pid)
        url = f"ws://127.0.0.1:{port}/ws"
        cmd = ["node", "load.mjs", "fanout", url, str(clients), SUBSCRIBE, TRIGGER, str(ROUNDS)]
        load = subprocess.Popen(
            pinned(cmd, 1),
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert load.stdin is not None and load.stdout is not None
        line = load.stdout.readline()
        if not line:
            raise RuntimeError(f"{kind}: the load generator exited ({load.wait(10)})")
        ready = json.loads(line)
        if ready.get("ready") != clients:
            raise RuntimeError(f"{kind}: only {ready} clients connected")
        time.sleep(0.3)
        after = rss_kib(server.pid)
        load.stdin.write("go\n")
        load.stdin.flush()
        result = json.loads(load.stdout.readline())
        load.wait(30)
        return {"ms": min(result["rounds_ms"]), "kib_per_conn": (after - before) / clients}
    finally:
        server.terminate()
        server.wait(10)


KINDS = ["nestjs", "bare-websockets", "bare-starlette", "framework-asgi", "framework-standalone"]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        run_on_loop(serve(sys.argv[2], int(sys.argv[3])))
        return
    json_path = pop_json(sys.argv)
    saved = Results("ws_fanout")
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 5000]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(sizes) * 2 + 1000
    if soft < want:
        # Servers and the load generator inherit it: each holds one socket per client.
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        raise SystemExit("Run `npm ci` in benchmarks/node first (needs the ws package)")
    for clients in sizes:
        results = {kind: run(kind, clients) for kind in KINDS}
        for kind, r in results.items():
            ours = kind.startswith("framework")
            scenario = f"one broadcast to {clients:,} clients"
            saved.add(scenario, kind, r["ms"], "ms", ours=ours, higher_is_better=False)
            saved.add(
                f"memory per idle connection, {clients:,} clients",
                kind,
                r["kib_per_conn"],
                "KiB",
                ours=ours,
                higher_is_better=False,
            )
        print(f"\n{clients} clients, one broadcast (best of {ROUNDS}; Python on {loop_name()}):")
        for kind, r in results.items():
            print(f"  {kind:22s} {r['ms']:8.1f} ms   {r['kib_per_conn']:6.1f} KiB/connection")
        for ours in ("framework-asgi", "framework-standalone"):
            for base in ("nestjs", "bare-websockets", "bare-starlette"):
                speed = results[base]["ms"] / results[ours]["ms"]
                print(f"  {ours} speed vs {base}: {speed:.2f}x")
        mem = results["framework-asgi"]["kib_per_conn"]
        verdict = "OK" if mem < 50 else "ABOVE TARGET"
        print(f"  framework (ASGI) memory per idle connection: {mem:.1f} KiB (< 50) {verdict}")
    saved.save(json_path)


if __name__ == "__main__":
    main()

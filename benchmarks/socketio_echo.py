"""Socket.IO ack throughput: a gateway handler with validation, against NestJS and bare
python-socketio, in one run; and memory per idle connection.

Servers (each in its own process, the same machine, pinned to one CPU):

- framework: a ``@websocket_gateway`` whose ``@subscribe_message("echo")`` handler
  validates a pydantic model and returns it as the ack (``SocketIoTransport`` under
  ``app.server()``: the Engine.IO WebSocket on picows);
- framework-asgi: the same app with the Engine.IO WebSocket through uvicorn's
  websockets-sansio protocol and the ASGI endpoint (what ``uvicorn module:app`` gives,
  and what ``app.server()`` did before picows served it);
- NestJS: ``benchmarks/node/nest_sio_gateway.cjs``, a NestJS 11 gateway on
  ``@nestjs/platform-socket.io`` whose ``echo`` returns its payload as the ack;
- python-socketio: a bare ``socketio.AsyncServer`` (ASGI, uvicorn) whose ``echo`` event
  returns its data.

The load is ``benchmarks/node/sio_load.cjs`` (Node ``socket.io-client`` 4.x from
tests/interop/socketio; ``npm ci`` there once): 10 and 100 connections, 5 acks in flight
on each, websocket transport. Rounds alternate between servers; every round is printed,
the best counts.

Run: ``python benchmarks/socketio_echo.py [seconds] [rounds] [idle connections]``.
Targets: framework >= 1.0x NestJS and >= 3x python-socketio; idle memory < 50 KiB per
connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from benchmarks._util import Results, pop_json
from benchmarks.ws_echo import cpu_seconds, free_port, pinned, wait_port
from framework import create_app, module
from framework.transports.socketio import SocketIoTransport, subscribe_message, websocket_gateway

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "benchmarks" / "node"
NODE_MODULES = ROOT / "tests" / "interop" / "socketio" / "node_modules"
INFLIGHT = 5
UVICORN: dict[str, Any] = {"log_level": "warning"}


class Msg(BaseModel):
    i: int
    text: str


@websocket_gateway()
class EchoGateway:
    @subscribe_message("echo")
    async def echo(self, msg: Msg) -> Msg:
        return msg


@module(providers=[EchoGateway])
class EchoModule:
    pass


def serve(kind: str, port: int) -> None:
    """Run a server as its users would: ``app.run()`` / ``uvicorn.run()`` pick the
    event loop (uvloop when it is installed)."""
    if kind == "framework":
        app = create_app(EchoModule, transports=[SocketIoTransport()])
        app.run("127.0.0.1", port, **UVICORN)
    elif kind == "framework-asgi":
        app = create_app(EchoModule, transports=[SocketIoTransport()])
        app.run("127.0.0.1", port, ws="websockets-sansio", **UVICORN)
    elif kind == "python-socketio":
        import socketio
        import uvicorn

        sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"])

        @sio.event  # type: ignore[misc]
        async def echo(sid: str, data: Any) -> Any:
            return data

        uvicorn.run(socketio.ASGIApp(sio), host="127.0.0.1", port=port, **UVICORN)
    else:
        raise SystemExit(f"unknown server {kind}")


def node_env() -> dict[str, str]:
    return {**os.environ, "NODE_PATH": str(NODE_MODULES)}


def start_server(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if kind == "nestjs":
        cmd = ["node", "nest_sio_gateway.cjs", str(port)]
        env, cwd = node_env(), NODE_DIR
    else:
        cmd = [sys.executable, __file__, "--serve", kind, str(port)]
        env, cwd = {**os.environ, "PYTHONPATH": str(ROOT)}, ROOT
    server = subprocess.Popen(
        pinned(cmd, 0), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port, timeout=30)
    time.sleep(0.5)  # NestJS binds before its gateway is ready
    return server, port


def run_node(args: list[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run(
        pinned(["node", "sio_load.cjs", *args], 1),
        cwd=NODE_DIR,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def idle_memory(kind: str, connections: int) -> float:
    """KiB of server memory per idle connection (RSS after connecting, less before)."""
    server, port = start_server(kind)
    try:
        before = rss_kib(server.pid)
        hold = subprocess.Popen(
            pinned(
                ["node", "sio_load.cjs", "idle", f"http://127.0.0.1:{port}", str(connections), "8"],
                1,
            ),
            cwd=NODE_DIR,
            env=node_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert hold.stdout is not None
        hold.stdout.readline()  # {"open": n}: every connection is up
        time.sleep(1.0)
        after = rss_kib(server.pid)
        hold.kill()
        hold.wait()
        return (after - before) / connections
    finally:
        server.terminate()
        server.wait()


KINDS = ["nestjs", "python-socketio", "framework-asgi", "framework"]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    json_path = pop_json(sys.argv)
    results = Results("socketio_echo")
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    idle = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    if not (NODE_MODULES / "socket.io-client").is_dir():
        raise SystemExit("Run `npm ci` in tests/interop/socketio first (socket.io-client)")
    servers = {kind: start_server(kind) for kind in KINDS}
    try:
        for connections in (10, 100):
            best = dict.fromkeys(KINDS, 0.0)
            cpu_us = dict.fromkeys(KINDS, float("inf"))
            every: dict[str, list[str]] = {kind: [] for kind in KINDS}
            for _ in range(rounds):
                for kind in KINDS:
                    server, port = servers[kind]
                    url = f"http://127.0.0.1:{port}"
                    before = cpu_seconds(server.pid)
                    args = ["echo", url, str(connections), str(INFLIGHT), str(seconds)]
                    result = run_node(args, seconds + 60)
                    if result["bad"]:
                        raise RuntimeError(f"{kind}: {result['bad']} wrong acks")
                    used = cpu_seconds(server.pid) - before
                    best[kind] = max(best[kind], result["rate"])
                    cpu = used / max(result["acks"], 1) * 1e6
                    cpu_us[kind] = min(cpu_us[kind], cpu)
                    every[kind].append(f"{result['rate'] / 1000:.1f}k/{cpu:.1f}us")
                    ours = kind.startswith("framework")
                    scenario = f"{connections} connections x {INFLIGHT} in flight"
                    results.add(scenario, kind, result["rate"], "acks/s", ours=ours)
                    results.add(
                        scenario + ", server CPU",
                        kind,
                        cpu,
                        "us per ack",
                        ours=ours,
                        higher_is_better=False,
                    )
            print(f"== {connections} connections x {INFLIGHT} in flight, best of {rounds}")
            for kind in KINDS:
                print(
                    f"  {kind:16} {best[kind]:9,.0f} acks/s  {cpu_us[kind]:6.1f} us CPU/ack"
                    f"   rounds: {' '.join(every[kind])}"
                )
            print(
                f"  framework / framework-asgi  {best['framework'] / best['framework-asgi']:.2f}"
                f"  (by CPU per ack {cpu_us['framework-asgi'] / cpu_us['framework']:.2f})"
            )
            ours = best["framework"]
            print(
                f"  framework / NestJS          {ours / best['nestjs']:.2f}  (target >= 1.0;"
                f" by CPU per ack {cpu_us['nestjs'] / cpu_us['framework']:.2f})"
            )
            print(
                f"  framework / python-socketio {ours / best['python-socketio']:.2f}  (target >= 3)"
            )
        results.save(json_path)
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait()
    if idle:
        for kind in ("framework", "nestjs"):
            print(f"idle memory, {kind}: {idle_memory(kind, idle):.1f} KiB per connection")


if __name__ == "__main__":
    main()

"""WebSocket echo throughput: a gateway handler with validation, against bare servers.

Servers (each in its own process, one at a time, same machine):

- framework (ASGI): a ``@websocket_gateway`` whose ``@subscribe_message("echo")``
  handler validates a pydantic model and returns it, served by ``app.server()`` on the
  app's HTTP port (uvicorn hands the transport's upgrades to picows);
- framework (ASGI, sansio): the same through uvicorn's websockets-sansio protocol and
  the ASGI endpoint (what ``uvicorn module:app`` run directly gives);
- framework (standalone): the same app with ``WebSocketTransport(port=...)``, on its
  own ``websockets`` server;
- bare websockets: ``async for m in ws: await ws.send(m)`` (websockets.asyncio);
- bare picows: an ``on_ws_frame`` that sends each text frame back (the standalone
  mode's frame I/O with nothing on top);
- bare starlette: a starlette WebSocket endpoint echoing text under the same uvicorn;
- NestJS: a NestJS 11 ``@WebSocketGateway`` on ``@nestjs/platform-ws`` whose
  ``@SubscribeMessage("echo")`` returns ``{event, data}`` (``benchmarks/nestjs/gateway.js``;
  it validates nothing, so it does less work per frame than the framework).

The Python servers run on the loop ``app.run()`` picks (uvloop when installed;
``BENCH_LOOP=asyncio`` for asyncio's own). The load is ``benchmarks/node/load.mjs``
(Node ``ws``): 10 and 100 connections, ``INFLIGHT`` frames in flight on each. Run
``npm ci`` in benchmarks/node and benchmarks/nestjs once (``make test`` does).

Run: ``python -m benchmarks.ws_echo [seconds] [repeats] [server,...]``. Targets: framework >= 1.0x
NestJS and >= 1.2x bare websockets. Prints messages per second and ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from benchmarks._util import Results, loop_name, pop_json, run_on_loop
from framework import Application, create_app, module
from framework.transports.websocket import (
    WebSocketTransport,
    subscribe_message,
    websocket_gateway,
)

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "benchmarks" / "node"
NEST_DIR = ROOT / "benchmarks" / "nestjs"
INFLIGHT = 8
FRAME = json.dumps({"event": "echo", "data": {"id": 1, "text": "hello world"}, "id": 1})
UVICORN: dict[str, Any] = {
    "log_level": "warning",
    "ws": "websockets-sansio",
    "ws_per_message_deflate": False,
    "ws_max_size": 1024 * 1024,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- servers (run in child processes) ----------------------------------------------------


class Msg(BaseModel):
    id: int
    text: str


@websocket_gateway()
class EchoGateway:
    @subscribe_message("echo")
    async def echo(self, msg: Msg) -> Msg:
        return msg


@module(providers=[EchoGateway])
class EchoModule:
    pass


def framework_app(port: int | None) -> Application:
    transport = WebSocketTransport("/ws", port=port, ping_interval=None)
    return create_app(EchoModule, transports=[transport])


async def serve(kind: str, port: int) -> None:
    if kind == "framework-asgi":
        # The framework's own uvicorn settings: its paths on picows.
        app = framework_app(None)
        await app.server("127.0.0.1", port, log_level="warning").serve()
    elif kind == "framework-asgi-sansio":
        # As under ``uvicorn module:app``: uvicorn's protocol and the ASGI endpoint.
        app = framework_app(None)
        await app.server("127.0.0.1", port, **UVICORN).serve()
    elif kind == "framework-standalone":
        app = framework_app(port)
        async with app:
            await asyncio.Event().wait()
    elif kind == "bare-websockets":
        from websockets.asyncio.server import ServerConnection
        from websockets.asyncio.server import serve as ws_serve
        from websockets.exceptions import ConnectionClosed

        async def echo(ws: ServerConnection) -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    await ws.send(message)

        async with ws_serve(echo, "127.0.0.1", port, compression=None, ping_interval=None):
            await asyncio.Event().wait()
    elif kind == "bare-picows":
        from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

        class Echo(WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
                if frame.msg_type is WSMsgType.TEXT:
                    transport.send(WSMsgType.TEXT, frame.get_payload_as_bytes())
                elif frame.msg_type is WSMsgType.CLOSE:
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()

        server = await ws_create_server(lambda _request: Echo(), "127.0.0.1", port)
        async with server:
            await asyncio.Event().wait()
    elif kind == "bare-starlette":
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute
        from starlette.websockets import WebSocket, WebSocketDisconnect

        async def endpoint(ws: WebSocket) -> None:
            await ws.accept()
            try:
                while True:
                    await ws.send_text(await ws.receive_text())
            except WebSocketDisconnect:
                pass

        bare = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
        await uvicorn.Server(uvicorn.Config(bare, "127.0.0.1", port, **UVICORN)).serve()
    else:
        raise SystemExit(f"unknown server {kind}")


# -- driver ------------------------------------------------------------------------------


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def pinned(cmd: list[str], cpu: int) -> list[str]:
    """Pin to one CPU when ``taskset`` exists: server and load generator get a core
    each instead of fighting over both."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(port: int, connections: int, seconds: float) -> tuple[float, int]:
    url = f"ws://127.0.0.1:{port}/ws"
    cmd = ["node", "load.mjs", "echo", url, str(connections), str(INFLIGHT), str(seconds), FRAME]
    out = subprocess.run(
        pinned(cmd, 1), cwd=NODE_DIR, capture_output=True, text=True, timeout=seconds + 30
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return float(result["rate"]), int(result["replies"])


def server_command(kind: str, port: int, mode: str) -> tuple[list[str], Path]:
    """How to start server ``kind`` (``mode``: echo or fanout): the command and its cwd."""
    if kind == "nestjs":
        if not (NEST_DIR / "node_modules" / "@nestjs" / "platform-ws").is_dir():
            raise SystemExit("Run `npm ci` in benchmarks/nestjs first (the NestJS peer)")
        return ["node", "gateway.js", mode, str(port)], NEST_DIR
    script = ROOT / "benchmarks" / f"ws_{mode}.py"
    return [sys.executable, str(script), "--serve", kind, str(port)], ROOT


def start_server(kind: str, mode: str = "echo") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd, cwd = server_command(kind, port, mode)
    # Servers log a line per connection dropped by the load generator: keep them quiet.
    server = subprocess.Popen(
        pinned(cmd, 0), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port)
    return server, port


KINDS = [
    "nestjs",
    "bare-websockets",
    "bare-picows",
    "bare-starlette",
    "framework-asgi",
    "framework-asgi-sansio",
    "framework-standalone",
]
OURS = ("framework-asgi", "framework-asgi-sansio", "framework-standalone")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        run_on_loop(serve(sys.argv[2], int(sys.argv[3])))
        return
    json_path = pop_json(sys.argv)
    results = Results("ws_echo")
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    # A third argument picks servers (comma-separated); NestJS and bare websockets, the
    # ratios' bases, always run.
    picked = sys.argv[3].split(",") if len(sys.argv) > 3 else KINDS
    kinds = [k for k in KINDS if k in picked or k in ("nestjs", "bare-websockets")]
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        raise SystemExit("Run `npm ci` in benchmarks/node first (needs the ws package)")
    servers = {kind: start_server(kind) for kind in kinds}
    try:
        for connections in (10, 100):
            rates = dict.fromkeys(kinds, 0.0)
            cpu_us = dict.fromkeys(kinds, float("inf"))
            every: dict[str, list[str]] = {kind: [] for kind in kinds}
            # Interleaved, best of ``repeats``: other load on the machine only slows runs.
            # Server CPU per message is the steadier number on a busy machine.
            for _ in range(repeats):
                for kind in kinds:
                    server, port = servers[kind]
                    before = cpu_seconds(server.pid)
                    rate, replies = run_load(port, connections, seconds)
                    used = cpu_seconds(server.pid) - before
                    rates[kind] = max(rates[kind], rate)
                    # CPU over warm-up + measurement, per message in the same window.
                    cpu = used / (replies + rate) * 1e6
                    cpu_us[kind] = min(cpu_us[kind], cpu)
                    every[kind].append(f"{rate / 1000:.1f}k/{cpu:.1f}us")
                    scenario = f"{connections} connections x {INFLIGHT} in flight"
                    results.add(scenario, kind, rate, "msg/s", ours=kind in OURS)
                    results.add(
                        scenario + ", server CPU",
                        kind,
                        cpu,
                        "us per message",
                        ours=kind in OURS,
                        higher_is_better=False,
                    )
            base, nest = rates["bare-websockets"], rates["nestjs"]
            print(
                f"\n{connections} connections x {INFLIGHT} in flight, best of {repeats}"
                f" (Python servers on {loop_name()}):"
            )
            for kind, rate in rates.items():
                print(
                    f"  {kind:22s} {rate:10,.0f} msg/s  {rate / base:5.2f}x bare websockets"
                    f"   server CPU {cpu_us[kind]:5.1f} us/msg   rounds: {' '.join(every[kind])}"
                )
            for ours in (k for k in OURS if k in rates):
                rate = rates[ours]
                for name, peer, target in (("NestJS", nest, 1.0), ("bare websockets", base, 1.2)):
                    verdict = "OK" if rate / peer >= target else "BELOW TARGET"
                    print(f"  {ours} / {name}: {rate / peer:.2f}x (>= {target}) {verdict}")
                if "bare-starlette" in rates:
                    print(f"  {ours} / bare starlette: {rate / rates['bare-starlette']:.2f}x")
                # The steadier figure on a busy machine: server CPU per message.
                by_cpu = cpu_us["nestjs"] / cpu_us[ours]
                print(f"  {ours} / NestJS by server CPU per message: {by_cpu:.2f}x")
        results.save(json_path)
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()

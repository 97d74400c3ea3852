"""``framework run``: the example app serves HTTP and stops cleanly on SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.cli.helpers import COMMAND_TIMEOUT_S, REPO_ROOT, Lines, env, kill, start

URL = r"Uvicorn running on (http://127\.0\.0\.1:\d+)"
RUNTIME = r"Event loop: (\w+); HTTP parser: (\w+)"
# The default install has uvloop and httptools wherever they have wheels (not Windows).
FAST = ("uvloop", "httptools") if sys.platform != "win32" else ("asyncio", "httptools")


def test_run_serves_the_app_and_stops_cleanly_on_sigint() -> None:
    # Port 0: the OS picks a free port and uvicorn logs the one it got, so no race.
    proc, _, err = start("run", "example_app.main:app", "--port", "0")
    try:
        assert err.wait_for(RUNTIME, COMMAND_TIMEOUT_S).groups() == FAST
        base = err.wait_for(URL, COMMAND_TIMEOUT_S).group(1)
        created = httpx.post(f"{base}/orders", json={"customer": "Ada", "total": 9.5})
        assert created.status_code == 201
        orders = httpx.get(f"{base}/orders")
        assert orders.status_code == 200
        assert orders.json() == [{"id": 1, "customer": "Ada", "total": 9.5}]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) == 0
        log = err.rest(COMMAND_TIMEOUT_S)
    finally:
        kill(proc)
    assert "App started" in log
    assert "Finished server process" in log
    assert "Traceback" not in log


def test_run_accepts_a_module_class_and_sigterm(tmp_path: Path) -> None:
    proc, _, err = start("run", "example_app.app_module:AppModule", "--port", "0")
    try:
        base = err.wait_for(URL, COMMAND_TIMEOUT_S).group(1)
        assert httpx.get(f"{base}/notifications").json() == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) == 0
    finally:
        kill(proc)


def test_run_falls_back_to_the_asyncio_loop_on_request() -> None:
    proc, _, err = start("run", "example_app.main:app", "--port", "0", "--loop", "asyncio")
    try:
        assert err.wait_for(RUNTIME, COMMAND_TIMEOUT_S).group(1) == "asyncio"
        base = err.wait_for(URL, COMMAND_TIMEOUT_S).group(1)
        assert httpx.get(f"{base}/orders").status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) == 0
    finally:
        kill(proc)


def test_app_run_uses_the_fast_loop_without_being_asked() -> None:
    code = "from example_app.main import app; app.run(port=0)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    err = Lines(proc.stderr)
    try:
        assert err.wait_for(RUNTIME, COMMAND_TIMEOUT_S).groups() == FAST
        base = err.wait_for(URL, COMMAND_TIMEOUT_S).group(1)
        assert httpx.get(f"{base}/orders").status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) == 0
    finally:
        kill(proc)


def test_run_reports_a_taken_port(tmp_path: Path) -> None:
    first, _, err = start("run", "example_app.main:app", "--port", "0")
    try:
        port = err.wait_for(URL, COMMAND_TIMEOUT_S).group(1).rsplit(":", 1)[1]
        second, _, err2 = start("run", "example_app.main:app", "--port", port)
        try:
            assert second.wait(timeout=COMMAND_TIMEOUT_S) == 1
            assert "address already in use" in err2.rest(COMMAND_TIMEOUT_S)
        finally:
            kill(second)
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=COMMAND_TIMEOUT_S)
        kill(first)


def _when_listening(url: str) -> ClientConnection:
    """Connect once a worker listens: uvicorn's parent process binds the port and logs
    it, and each worker starts listening only after its app started."""
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    while True:
        try:
            return connect(url, open_timeout=COMMAND_TIMEOUT_S, compression=None)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _websocket_paths_answer(base: str) -> list[dict[str, str]]:
    """The WebSocket transport's and Socket.IO's handshake response headers, after each
    answered a frame."""
    url = base.replace("http://", "ws://")
    timeout = COMMAND_TIMEOUT_S
    with _when_listening(url + "/ws") as ws:
        ws.send(json.dumps({"event": "orders.get", "data": 404, "id": 7}))
        reply = json.loads(ws.recv(timeout=timeout))
        assert reply["event"] == "exception" and reply["id"] == 7
        ws_headers = dict(ws.response.headers)
    sio_url = url + "/socket.io/?EIO=4&transport=websocket"
    with _when_listening(sio_url) as sio:
        assert str(sio.recv(timeout=timeout)).startswith("0{")  # the Engine.IO handshake
        sio.send("40")
        assert str(sio.recv(timeout=timeout)).startswith("40{")  # connected to "/"
        sio_headers = dict(sio.response.headers)
    return [ws_headers, sio_headers]


@pytest.mark.parametrize("mode", [["--workers", "2"], ["--reload"]], ids=["workers", "reload"])
def test_workers_and_reload_serve_the_websocket_paths_on_picows(mode: list[str]) -> None:
    # Each process builds its own app and its own picows hand-over. uvicorn's own
    # WebSocket protocol (the ASGI path) names itself in the handshake response; picows
    # does not: the only outside sign of which one answered.
    proc, _, err = start("run", "example_app.main:app", "--port", "0", *mode)
    try:
        base = err.wait_for(URL, COMMAND_TIMEOUT_S).group(1)
        for headers in _websocket_paths_answer(base):
            assert headers.get("server") != "uvicorn", headers
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) == 0
    finally:
        kill(proc)

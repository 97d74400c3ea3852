"""``framework run``: the example app serves HTTP and stops cleanly on SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

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

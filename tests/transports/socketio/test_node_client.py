"""A real Node ``socket.io-client`` 4.x talks to the transport: polling then the upgrade,
acks, several arguments, error acks, events, namespaces with auth, a refusal, rooms, and
connection state recovery after a dropped connection."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.transports.socketio.app import TIMEOUT, Seen, served

pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).parents[2] / "interop" / "socketio"


def require_node_package(package: str) -> str:
    """The ``node`` binary, once ``package`` is installed in tests/interop/socketio."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (NODE_DIR / "node_modules" / package).is_dir():
        missing = f"run `npm ci` in {NODE_DIR} ({package} is missing)"
    if missing is not None:
        if os.environ.get("REQUIRE_NODE") == "1":
            pytest.fail(f"{missing} (REQUIRE_NODE=1 makes this a failure)", pytrace=False)
        pytest.skip(missing)
    assert node is not None
    return node


async def test_socket_io_client_round_trips_and_recovers_its_state() -> None:
    node = require_node_package("socket.io-client")
    async with served(recovery_window=30) as (app, transport, url):
        proc = await asyncio.create_subprocess_exec(
            node,
            "client.cjs",
            url,
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        steps: dict[str, Any] = {}
        try:
            async with asyncio.timeout(3 * TIMEOUT):
                while "done" not in steps and "failed" not in steps:
                    line = await proc.stdout.readline()
                    if not line:
                        break
                    step = json.loads(line)
                    steps[step["step"]] = step
                    if step["step"] == "joined":
                        transport.broadcast("news", {"n": 1}, room="r1")
                        proc.stdin.write(b"go\n")
                    elif step["step"] == "dropped":
                        transport.broadcast("news", {"n": 2}, room="r1")
                        proc.stdin.write(b"go\n")
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
        assert "failed" not in steps, steps["failed"]["error"]
        assert "done" in steps, (steps, stderr)
        assert steps["upgraded"]["first"] == "polling"
        assert steps["upgraded"]["now"] == "websocket"
        assert steps["echo"]["ack"] == {"text": "hi"}
        assert steps["sum"]["ack"] == 6
        error = steps["error"]
        assert error["ack"]["status"] == "error"
        assert error["ack"]["message"] == "Validation failed"
        assert error["exception"] == error["ack"]
        # The docs' JS stream helper: items, an error, and leaving early cancels.
        assert steps["streamed"]["counted"] == [0, 1, 2]
        assert steps["streamed"]["streamError"] == {
            "message": "Validation failed",
            "status": "error",
        }
        async with asyncio.timeout(TIMEOUT):
            await app.get(Seen).stream_closed.wait()
        assert steps["admin"]["whoami"] == "ann"
        assert steps["refused"]["message"] == "Invalid token"
        assert steps["joined"]["rooms"] == ["r1"]
        assert steps["news"]["item"] == {"n": 1}
        assert steps["dropped"]["reason"] == "forced close"
        recovered = steps["recovered"]
        assert recovered["recovered"] is True
        assert recovered["sameId"] is True
        assert recovered["missed"] == {"n": 2}
        assert await app.get(Seen).wait_for("note") == "from node"

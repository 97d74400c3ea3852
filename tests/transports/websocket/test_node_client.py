"""A Node.js client using the ``ws`` npm package talks to the transport (interop)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.transports.websocket.app import TIMEOUT, served

pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).parent / "node"


def _require_node() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (NODE_DIR / "node_modules" / "ws").is_dir():
        missing = f"run `npm ci` in {NODE_DIR} (the ws package is missing)"
    if missing is not None:
        if os.environ.get("REQUIRE_NODE") == "1":
            pytest.fail(f"{missing} (REQUIRE_NODE=1 makes this a failure)", pytrace=False)
        pytest.skip(missing)
    assert node is not None
    return node


async def test_node_ws_client_requests_streams_errors_and_pushes() -> None:
    node = _require_node()
    async with served() as (app, _, url):
        proc = await asyncio.create_subprocess_exec(
            node,
            "client.mjs",
            url + "/ws",
            cwd=NODE_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        steps: dict[str, Any] = {}
        try:
            async with asyncio.timeout(3 * TIMEOUT):
                while "done" not in steps:
                    line = await proc.stdout.readline()
                    if not line:
                        break
                    step = json.loads(line)
                    steps[step["step"]] = step
                    if step["step"] == "subscribed":
                        await app.publish("orders.created", {"id": 4})
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, (await proc.stderr.read()).decode() if proc.stderr else ""
    done = steps["done"]
    assert done["reply"] == {"event": "order.check", "data": {"id": 4, "total": 2.5}, "id": 1}
    assert done["items"] == [0, 1, 2]
    assert done["malformed"]["data"]["message"] == "Malformed JSON frame"
    assert done["invalid"]["event"] == "exception"
    assert done["invalid"]["data"]["message"] == "Validation failed"
    assert steps["subscribed"]["subscribed"]["data"] == ["orders.*"]
    assert done["pushed"] == {"event": "orders.created", "data": {"id": 4}}

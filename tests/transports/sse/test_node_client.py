"""The Node ``eventsource`` package as a second client: events, drop, reconnect, resume."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from framework import controller, create_app, module
from framework.transports.sse import SseTransport
from tests.transports.sse.conftest import TIMEOUT, LastEventIdLog, seq, serving, wait_until

pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).parent / "node"


def _require_node() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (NODE_DIR / "node_modules" / "eventsource").is_dir():
        missing = f"npm packages missing: run `npm ci` in {NODE_DIR}"
    if missing is not None:
        if os.environ.get("REQUIRE_NODE") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    assert node is not None
    return node


@controller()
class NothingController:
    pass


@module(controllers=[NothingController])
class EmptyModule:
    pass


class NodeClient:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    async def next_line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            raw = await self.process.stdout.readline()
        assert raw, "the node client exited"
        line: dict[str, Any] = json.loads(raw)
        self.lines.append(line)
        return line

    async def events(self, count: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while len(found) < count:
            line = await self.next_line()
            if line["kind"] == "event":
                found.append(line)
        return found

    async def wait_open(self) -> None:
        while (await self.next_line())["kind"] != "open":
            pass


async def test_node_eventsource_resumes_after_the_server_drops_it() -> None:
    node = _require_node()
    log = LastEventIdLog()
    transport = SseTransport("/events", retry_ms=100, guards=[log])
    app = create_app(EmptyModule, transports=[transport])
    async with serving(app) as url:
        process = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / "client.mjs"),
            f"{url}/events?subscribe=feed.*",
            "feed.item",
            "reset",
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        client = NodeClient(process)
        try:
            await client.wait_open()
            for i in range(1, 4):
                await app.publish("feed.item", {"n": i, "text": "line one\nline two"})
            first = await client.events(3)
            assert transport.close_streams() == 1
            await wait_until(lambda: transport.subscriber_count == 0)
            # Published while the client is away: it must get these on reconnect.
            for i in range(4, 6):
                await app.publish("feed.item", {"n": i, "text": "line one\nline two"})
            await client.wait_open()
            await app.publish("feed.item", {"n": 6, "text": "line one\nline two"})
            rest = await client.events(3)
        finally:
            assert process.stdin is not None
            process.stdin.close()
            async with asyncio.timeout(TIMEOUT):
                await process.wait()
    received = first + rest
    assert [seq(e["id"]) for e in received] == ["1", "2", "3", "4", "5", "6"]
    assert [json.loads(e["data"])["n"] for e in received] == [1, 2, 3, 4, 5, 6]
    assert json.loads(received[0]["data"])["text"] == "line one\nline two"
    assert [seq(i) for i in log.ids] == [None, "3"]

"""``app.publish`` reaches WebSocket subscribers on every instance through KafkaRelay.

Two app processes (uvicorn on free ports) share a broadcast topic on a real Apache Kafka
broker; a publish on either instance reaches the subscribers of both, once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.transports.websocket.app import TIMEOUT, raw_client, recv_json, send_json

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_port(port: int, proc: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(6 * TIMEOUT):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"instance on port {port} exited with {proc.returncode}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def instances(bootstrap: str, count: int) -> AsyncIterator[list[str]]:
    """``count`` app processes sharing one relay topic; yields their WebSocket URLs."""
    topic = f"ws-relay-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: list[asyncio.subprocess.Process] = []
    urls = []
    try:
        for _ in range(count):
            port = _free_port()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.transports.websocket.relay_app",
                bootstrap,
                topic,
                str(port),
                cwd=ROOT,
                env=env,
            )
            procs.append(proc)
            urls.append(f"ws://127.0.0.1:{port}/ws")
        for proc, url in zip(procs, urls, strict=True):
            await _wait_port(int(url.rsplit(":", 1)[1].split("/")[0]), proc)
        yield urls
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 3 * TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_publish_reaches_subscribers_on_every_instance(
    kafka_bootstrap_servers: str,
) -> None:
    async with (
        instances(kafka_bootstrap_servers, 2) as (url_a, url_b),
        raw_client(url_a) as a,
        raw_client(url_b) as b,
    ):
        for ws in (a, b):
            await send_json(ws, {"event": "subscribe", "data": ["orders.*"], "id": 1})
            assert (await recv_json(ws))["data"] == ["orders.*"]
        for n, firer in enumerate((a, b)):
            fire = {"pattern": "orders.created", "data": {"n": n}}
            await send_json(firer, {"event": "fire", "data": fire})
            got = {"a": [], "b": []}  # type: dict[str, list[object]]
            for name, ws in (("a", a), ("b", b)):
                frame = await recv_json(ws, skip=("welcome", "fire"))
                got[name].append(frame)
            expected = {"event": "orders.created", "data": {"n": n}}
            assert got == {"a": [expected], "b": [expected]}
        # Exactly once each: the next frame on each socket answers this new request.
        for ws in (a, b):
            await send_json(ws, {"event": "unsubscribe", "data": "orders.*", "id": 9})
            assert await recv_json(ws, skip=("fire",)) == {
                "event": "unsubscribe",
                "data": [],
                "id": 9,
            }

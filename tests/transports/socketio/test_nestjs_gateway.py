"""Our ``SocketIoClient`` against a real NestJS 11 gateway on
``@nestjs/platform-socket.io``: acks, ``{event, data}`` replies emitted as events, and
NestJS's error mapping (an ``exception`` event, no ack) turned into ``RemoteError``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from framework import RemoteError
from framework.transports.socketio import SocketIoClient
from tests.transports.socketio.app import TIMEOUT
from tests.transports.socketio.test_node_client import NODE_DIR, require_node_package

pytestmark = pytest.mark.interop


@asynccontextmanager
async def nest_gateway() -> AsyncIterator[str]:
    node = require_node_package("@nestjs/platform-socket.io")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        node, "nest_gateway.cjs", str(port), cwd=NODE_DIR, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(3 * TIMEOUT):
            assert (await proc.stdout.readline()).strip() == b"listening"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        await proc.wait()


async def test_our_client_talks_to_a_nestjs_gateway() -> None:
    async with nest_gateway() as url:
        client = SocketIoClient(url, namespace="/chat", fail_pending_on_exception=True)
        shouted: asyncio.Queue[object] = asyncio.Queue()
        client.on("shouted", shouted.put_nowait)
        async with client:
            assert await client.send("echo", {"text": "hi"}) == {"text": "hi"}
            with pytest.raises(RemoteError) as caught:
                await client.send("fail", {"text": "x"}, timeout=TIMEOUT)
            error = caught.value.payload
            assert error["status"] == "error" and error["message"] == "nope"
            assert error["cause"]["pattern"] == "fail"  # NestJS 11 names the event
            await client.emit("shout", {"text": "hey"})
            async with asyncio.timeout(TIMEOUT):
                assert await shouted.get() == {"text": "HEY"}
            # The connection still serves after the error.
            assert await client.send("echo", [1, 2]) == [1, 2]

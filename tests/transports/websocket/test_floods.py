"""Clients that flood a connection cannot grow the server's memory (issue 15, defect 2).

A client that sends pings and never reads makes the server queue one pong per ping in
its write buffer; uvicorn and websockets write those pongs without back-pressure. The
transport stops reading from a connection whose write buffer is full, so the flood
fills the kernel's socket buffers and then the client's own ``send`` blocks."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tests.timing import TIME_FACTOR
from tests.transports.websocket.app import raw_client, recv_json, send_json, served
from tests.transports.websocket.test_hostile import HostileModule, rss_mib

_HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
PING = bytes([0x89, 0x80 | 125]) + b"\x00\x00\x00\x00" + b"p" * 125
"""A masked ping with the largest control payload (125 bytes): the pong is as big."""
FLOOD_BYTES = 64 * 1024 * 1024
RSS_BOUND_MIB = 16
"""Measured: about 1 MiB with flow control, 57 MiB without (64 MiB of pings)."""


def _flood(sock: socket.socket, seconds: float) -> int:
    """Send pings until ``FLOOD_BYTES`` went out, ``seconds`` passed, or the server
    stopped reading (a send blocks for a second); returns the bytes sent."""
    chunk = PING * 512
    sent = 0
    sock.settimeout(1.0)
    deadline = time.monotonic() + seconds
    while sent < FLOOD_BYTES and time.monotonic() < deadline:
        try:
            sock.sendall(chunk)
        except TimeoutError:
            break
        sent += len(chunk)
    return sent


@pytest.mark.parametrize("mode", ["asgi", "standalone"])
async def test_a_ping_flood_from_a_client_that_never_reads_is_bounded(mode: str) -> None:
    async with served(HostileModule, mode=mode, ping_interval=None) as (_, _t, url):
        port = int(url.rsplit(":", 1)[1])
        flooder = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            flooder.connect(("127.0.0.1", port))
            flooder.sendall(_HANDSHAKE)
            head = b""
            while b"\r\n\r\n" not in head:
                head += await asyncio.to_thread(flooder.recv, 1024)
            assert head.startswith(b"HTTP/1.1 101")
            before = rss_mib()
            sent = await asyncio.to_thread(_flood, flooder, 8 * TIME_FACTOR)
            grown = rss_mib() - before
            assert grown < RSS_BOUND_MIB, f"RSS grew {grown:.0f} MiB after {sent >> 20} MiB"
            # The server still serves everyone else.
            async with raw_client(url + "/ws") as ws:
                await send_json(ws, {"event": "echo.x", "data": 1, "id": 1})
                assert (await recv_json(ws))["data"] == 1
        finally:
            flooder.close()

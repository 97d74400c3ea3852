"""Clients that never read are dropped and their TCP connections really close, on the
app's port (issue 15, defect 3): WebSocket sockets whose send queue filled and SSE
streams whose buffer filled must not stay ESTABLISHED holding kernel buffers."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from typing import Any

import pytest

from framework import create_app, module
from framework.transports import Transport, TransportEvents
from framework.transports.sse import SseTransport
from framework.transports.websocket import WebSocketTransport
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/net/tcp")

CLIENTS = 8
_HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


_SUBSCRIBE = b"GET /events?subscribe=t.* HTTP/1.1\r\nHost: t\r\n\r\n"


class Drops(TransportEvents):
    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], int] = {}

    def dropped(self, transport: Transport, peer: Any, why: str) -> None:
        key = (transport.name, why)
        self.seen[key] = self.seen.get(key, 0) + 1


@module()
class Empty:
    pass


def _established(port: int) -> int:
    """TCP connections in ESTABLISHED state on the server's side of ``port``."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port:
                count += 1
    return count


async def _until(check: Callable[[], bool], seconds: float) -> None:
    """Poll ``check`` (kernel and server state nobody signals) until true or timeout."""
    step = 0.02
    for _ in range(int(seconds / step)):
        if check():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"not true within {seconds:g} s: {check.__doc__}")


def _masked_text(payload: bytes) -> bytes:
    return bytes([0x81, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


def _stalled(port: int, request: bytes) -> socket.socket:
    """A client with a tiny receive buffer that never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock


async def test_dropped_slow_clients_lose_their_connections() -> None:
    ws = WebSocketTransport("/ws", send_queue=8, close_timeout=0.5 * TIME_FACTOR)
    sse = SseTransport("/events", max_buffer=8, heartbeat=None)
    app = create_app(Empty, transports=[ws, sse])
    drops = Drops()
    app.use_transport_events(drops)
    clients: list[socket.socket] = []
    try:
        async with uvicorn_running(app) as port:
            for _ in range(CLIENTS):
                sock = _stalled(port, _HANDSHAKE)
                head = b""
                while b"\r\n\r\n" not in head:  # the 101 answer, then frames
                    head += await asyncio.to_thread(sock.recv, 1024)
                sock.sendall(_masked_text(b'{"event":"subscribe","data":"t.*"}'))
                clients.append(sock)
                clients.append(
                    _stalled(port, b"GET /events?subscribe=t.* HTTP/1.1\r\nHost: t\r\n\r\n")
                )

            def subscribed() -> bool:
                """every client subscribed"""
                wsubs = sum(len(s.subscriptions) for s in ws.sockets.values())
                return sse.subscriber_count == CLIENTS and wsubs == CLIENTS

            await _until(subscribed, 10 * TIME_FACTOR)
            assert _established(port) == 2 * CLIENTS
            big = {"x": "y" * 20_000}
            for i in range(400):
                await app.publish("t.a", big)
                if i % 50 == 0:
                    await asyncio.sleep(0)  # let writers run into the full buffers
            assert not ws.sockets and not sse.subscriber_count  # all dropped
            assert drops.seen == {
                ("ws", "send queue full"): CLIENTS,
                ("sse", "buffer full"): CLIENTS,
            }

            # Dropped is not enough: the server must let go of the TCP connections.
            def released() -> bool:
                """no connection left ESTABLISHED"""
                return _established(port) == 0

            await _until(released, 15 * TIME_FACTOR)
    finally:
        for sock in clients:
            sock.close()

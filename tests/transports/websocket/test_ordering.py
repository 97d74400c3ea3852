"""A socket's frames leave in the order they were produced, even when the client is slow.

Driven through ``WsSocket`` with a connection whose TCP buffer is "full" until the test
opens it: the same decisions the socket makes on a real slow connection, without the
timing of one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from framework.transports.websocket._socket import Hub, WsSocket


class SlowConnection:
    """Accepts nothing synchronously until ``open()``; records what was written."""

    def __init__(self, expected: int) -> None:
        self.written: list[bytes] = []
        self.room = asyncio.Event()
        self.all_written = asyncio.Event()
        self.expected = expected

    def _record(self, frame: bytes) -> None:
        self.written.append(frame)
        if len(self.written) == self.expected:
            self.all_written.set()

    def wire(self, frame: bytes) -> bytes:
        return frame

    def try_write(self, frame: Any) -> bool:
        if not self.room.is_set():
            return False
        self._record(frame)
        return True

    async def send_wire(self, frame: Any) -> bool:
        await self.room.wait()
        self._record(frame)
        return True

    async def close(self, code: int, reason: str) -> None:
        return None

    def abort(self) -> None:
        return None


async def test_a_reply_waits_behind_pushes_queued_before_it() -> None:
    link = SlowConnection(expected=3)
    hub = Hub(send_queue=10, close_timeout=1)
    sock = WsSocket(hub, link, path="/ws", headers={}, query={}, client=None)
    assert sock.push(b"push-1") and sock.push(b"push-2")  # the client is not reading
    link.room.set()  # the TCP buffer drains before the writer task has run
    assert await sock.send_now(b"reply")  # a reply produced now must not jump the queue
    await asyncio.wait_for(link.all_written.wait(), 5)
    assert link.written == [b"push-1", b"push-2", b"reply"]
    sock.finish(1000)

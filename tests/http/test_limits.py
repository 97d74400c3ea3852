"""HTTP limits on the app's real server (issue 15, weak spots): request bodies are
bounded per route, and a client that never finishes its request headers (or its
WebSocket handshake) is dropped after ``header_timeout``."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
from pydantic import BaseModel

from framework import controller, create_app, module, post
from framework.transports.sse import SseTransport
from framework.transports.websocket import WebSocketTransport
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running
from tests.transports.websocket.test_hostile import rss_mib


class Note(BaseModel):
    text: str


@controller("/notes")
class NotesController:
    @post()
    async def create(self, note: Note) -> dict[str, Any]:
        return {"length": len(note.text)}

    @post("/small", max_body=100)
    async def small(self, note: Note) -> dict[str, Any]:
        return {"length": len(note.text)}


@module(controllers=[NotesController])
class NotesModule:
    pass


def _chunked_upload(port: int, megabytes: int) -> bytes:
    """POST a chunked body (no Content-Length) of ``megabytes`` MiB, stopping early
    when the server answers; returns the response head."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10 * TIME_FACTOR)
    try:
        sock.sendall(
            b"POST /notes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 65536
        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        try:
            for _ in range(megabytes * 16):
                sock.sendall(framed)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed while we were still sending
        return sock.recv(4096)
    finally:
        sock.close()


async def test_post_bodies_are_bounded_with_413() -> None:
    app = create_app(NotesModule)
    async with uvicorn_running(app) as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as http:
            ok = await http.post("/notes", json={"text": "a" * 1000})
            assert (ok.status_code, ok.json()) == (201, {"length": 1000})
            big = await http.post("/notes", json={"text": "a" * (1024 * 1024)})
            assert big.status_code == 413
            assert big.json() == {
                "status": "error",
                "message": "The request body is larger than 1048576 bytes",
                "statusCode": 413,
            }
            small = await http.post("/notes/small", json={"text": "a" * 200})
            assert small.status_code == 413
            assert small.json()["message"] == "The request body is larger than 100 bytes"
            assert (await http.post("/notes/small", json={"text": "ab"})).status_code == 201
        # Without a Content-Length the server stops reading at the limit: 200 MiB sent
        # in chunks does not pass through memory.
        before = rss_mib()
        head = await asyncio.to_thread(_chunked_upload, port, 200)
        assert head.startswith(b"HTTP/1.1 413"), head[:100]
        assert rss_mib() - before < 32


def _partial(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head)
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


async def test_unfinished_request_heads_are_closed_after_header_timeout() -> None:
    """Partial heads, a slowloris dripping header lines, and a half-sent WebSocket
    handshake are all closed at the deadline; a streaming response outlives it."""
    timeout = 0.5 * TIME_FACTOR
    app = create_app(NotesModule, transports=[WebSocketTransport("/ws"), SseTransport("/events")])
    async with uvicorn_running(app, header_timeout=timeout) as port:
        stalled = [_partial(port, b"GET /notes HTTP/1.1\r\nHost: t\r\n") for _ in range(20)]
        stalled.append(_partial(port, b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"))
        drip = _partial(port, b"GET /notes HTTP/1.1\r\n")

        def slowloris() -> bool:
            for i in range(int(4 * timeout / 0.1)):
                try:
                    drip.sendall(b"X-%d: y\r\n" % i)
                except OSError:
                    return True  # closed under us: what should happen
                time.sleep(0.1)
            return _closed_by_server(drip, 0.1)

        stream = socket.create_connection(("127.0.0.1", port))
        stream.sendall(b"GET /events?subscribe=t HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            started = time.monotonic()
            results = await asyncio.gather(
                asyncio.to_thread(slowloris),
                *(asyncio.to_thread(_closed_by_server, s, 4 * timeout) for s in stalled),
            )
            assert all(results)
            assert time.monotonic() - started >= timeout * 0.9
            # A response in progress is not a request head waiting: the stream stays.
            assert not await asyncio.to_thread(_closed_by_server, stream, timeout)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                ok = await http.post("/notes", json={"text": "still serving"})
                assert ok.status_code == 201
        finally:
            for sock in [*stalled, drip, stream]:
                sock.close()


async def test_a_body_that_is_not_utf8_gets_422_not_500() -> None:
    """Found by tests/fuzz: pydantic cannot put non-UTF-8 input in its JSON error list,
    and the error reply itself failed (500)."""
    app = create_app(NotesModule)
    async with (
        uvicorn_running(app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        bad = await http.post("/notes", content=b'{"text": "\xff"}')
        assert bad.status_code == 422
        body = bad.json()
        assert body["message"] == "Malformed JSON payload" and body["statusCode"] == 422
        assert "input" not in body["errors"][0]

"""HTTP limits on the app's real server (issue 15, weak spots): request bodies are
bounded per route, and a client that never finishes its request headers is dropped."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
from pydantic import BaseModel

from framework import controller, create_app, module, post
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

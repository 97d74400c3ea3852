"""HTTP routes through starlette: binding, validation, status codes, pipeline, SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.requests import Request

from framework import (
    ExecutionContext,
    HttpException,
    RpcException,
    ServerSentEvent,
    controller,
    create_app,
    delete,
    get,
    module,
    post,
    sse,
    use_guards,
)


class NewNote(BaseModel):
    text: str


class AdminGuard:
    def can_activate(self, ctx: ExecutionContext) -> bool:
        assert ctx.kind == "http" and ctx.transport == "http"
        return ctx.headers.get("x-role") == "admin"


@controller("/notes")
class NotesController:
    def __init__(self) -> None:
        self.notes: dict[int, str] = {}

    @post()
    async def create(self, body: NewNote) -> dict[str, Any]:
        note_id = len(self.notes) + 1
        self.notes[note_id] = body.text
        return {"id": note_id, "text": body.text}

    @get("/{note_id}")
    def read(self, note_id: int, upper: bool = False) -> dict[str, Any]:
        if note_id not in self.notes:
            raise HttpException(404, f"Note {note_id} not found")
        text = self.notes[note_id]
        return {"id": note_id, "text": text.upper() if upper else text}

    @get("/search")
    async def search(self, q: str, request: Request) -> list[str]:
        assert request.url.path == "/notes/search"
        return [t for t in self.notes.values() if q in t]

    @delete("/{note_id}")
    @use_guards(AdminGuard())
    async def remove(self, note_id: int) -> None:
        self.notes.pop(note_id, None)

    @get("/rpc-error")
    async def rpc_error(self) -> None:
        raise RpcException("nope")

    @get("/crash")
    async def crash(self) -> None:
        raise RuntimeError("internal detail")

    @sse("/stream")
    async def stream(self) -> AsyncIterator[Any]:
        yield {"n": 1}
        yield ServerSentEvent(data="line1\nline2", event="multi", id="7", retry=1000)
        raise RuntimeError("stream broke")


@module(controllers=[NotesController])
class App:
    pass


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_app(App) as app:
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_post_validates_body_and_answers_201(http: httpx.AsyncClient) -> None:
    created = await http.post("/notes", json={"text": "buy milk"})
    assert created.status_code == 201
    assert created.json() == {"id": 1, "text": "buy milk"}
    bad = await http.post("/notes", json={"txt": "x"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["text"]
    malformed = await http.post("/notes", content=b"{oops")
    assert malformed.status_code == 422
    assert malformed.json()["message"] == "Malformed JSON payload"


async def test_path_and_query_parameters_convert_by_type(http: httpx.AsyncClient) -> None:
    await http.post("/notes", json={"text": "hello"})
    assert (await http.get("/notes/1", params={"upper": "true"})).json()["text"] == "HELLO"
    assert (await http.get("/notes/search", params={"q": "ell"})).json() == ["hello"]
    missing = await http.get("/notes/search")
    assert missing.status_code == 422
    assert "Missing query parameter 'q'" in missing.text
    wrong = await http.get("/notes/abc")
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["loc"] == ["path", "note_id"]


async def test_errors_map_to_status_codes_without_internals(http: httpx.AsyncClient) -> None:
    assert (await http.get("/notes/9")).status_code == 404
    rpc = await http.get("/notes/rpc-error")
    assert (rpc.status_code, rpc.json()["message"]) == (400, "nope")
    crash = await http.get("/notes/crash")
    assert crash.status_code == 500
    assert "internal detail" not in crash.text
    assert crash.json()["message"] == "Internal server error"


async def test_guard_refuses_with_403(http: httpx.AsyncClient) -> None:
    assert (await http.delete("/notes/1")).status_code == 403
    assert (await http.delete("/notes/1", headers={"x-role": "admin"})).status_code == 200


async def test_sse_route_formats_events_and_reports_a_broken_stream(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/notes/stream")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    blocks = response.text.split("\n\n")
    assert blocks[0] == 'data: {"n":1}'
    assert blocks[1] == "event: multi\nid: 7\nretry: 1000\ndata: line1\ndata: line2"
    assert blocks[2].startswith("event: error\ndata: ")
    assert "Internal server error" in blocks[2] and "stream broke" not in blocks[2]

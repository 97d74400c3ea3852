"""The OpenAPI 3.1 document of HTTP routes: validated against the official OpenAPI 3.1
schema (openapi-spec-validator), derived from the same hints that bind requests, and
served by a real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
from openapi_spec_validator import validate
from pydantic import BaseModel, Field
from starlette.responses import PlainTextResponse

from framework import controller, create_app, get, module, post, sse
from framework.http import build_openapi, mount_openapi
from framework.http._decorators import delete
from framework.testing import create_testing_module
from tests.cli.helpers import cli


class NewNote(BaseModel):
    text: str = Field(min_length=1)
    tags: list[str] = []


class Note(BaseModel):
    id: int
    text: str


@controller("/notes")
class NotesController:
    @post()
    async def create(self, note: NewNote) -> Note:
        """Create a note.

        The text must not be empty."""
        return Note(id=1, text=note.text)

    @get("/{note_id}")
    async def read(self, note_id: int, verbose: bool = False) -> Note:
        return Note(id=note_id, text="x")

    @get()
    async def search(self, q: str, tag: list[str], limit: int = 20) -> list[Note]:
        return []

    @delete("/{note_id}")
    async def remove(self, note_id: int) -> None:
        return None

    @get("/{note_id}/raw")
    async def raw(self, note_id: int) -> PlainTextResponse:
        return PlainTextResponse("x")

    @sse("/feed")
    async def feed(self) -> AsyncIterator[Note]:
        yield Note(id=1, text="x")


@module(controllers=[NotesController])
class NotesModule:
    pass


async def test_the_document_is_valid_openapi_3_1_and_follows_the_hints() -> None:
    doc = await build_openapi(create_app(NotesModule), title="Notes", version="2.0.0")
    validate(doc)  # raises on anything the official schema refuses
    assert doc["openapi"] == "3.1.0" and doc["info"] == {"title": "Notes", "version": "2.0.0"}
    paths = doc["paths"]
    assert set(paths) == {"/notes", "/notes/{note_id}", "/notes/{note_id}/raw", "/notes/feed"}

    create = paths["/notes"]["post"]
    assert create["summary"] == "Create a note." and "must not be empty" in create["description"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewNote"
    }
    assert set(create["responses"]) == {"201", "413", "422", "default"}

    read = paths["/notes/{note_id}"]["get"]
    assert read["parameters"] == [
        {"name": "note_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        {
            "name": "verbose",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": False},
        },
    ]
    ok = read["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Note"}

    search = {p["name"]: p for p in paths["/notes"]["get"]["parameters"]}
    assert search["q"]["required"] is True
    assert search["tag"]["explode"] is True  # ?tag=a&tag=b, as the binder reads it
    assert search["tag"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert search["limit"]["schema"]["default"] == 20
    listed = paths["/notes"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"type": "array", "items": {"$ref": "#/components/schemas/Note"}}

    assert paths["/notes/{note_id}"]["delete"]["responses"]["200"] == {"description": "No content"}
    assert "content" not in paths["/notes/{note_id}/raw"]["get"]["responses"]["200"]
    feed = paths["/notes/feed"]["get"]["responses"]["200"]
    assert "text/event-stream" in feed["content"] and "Note" in feed["description"]
    schemas = doc["components"]["schemas"]
    assert {"Error", "NewNote", "Note"} <= set(schemas)
    assert schemas["NewNote"]["properties"]["text"]["minLength"] == 1


async def test_mount_openapi_serves_it_on_a_real_server() -> None:
    t = create_testing_module(NotesModule).compile()
    mount_openapi(t.app, "/openapi.json", title="Notes")
    async with t:
        url = await t.listen()
        async with httpx.AsyncClient(base_url=url) as http:
            served = (await http.get("/openapi.json")).json()
            # The document describes what the server does: the body it refuses, for one.
            refused = await http.post("/notes", json={"text": ""})
    assert served == await build_openapi(t.app, title="Notes")
    validate(served)
    assert str(refused.status_code) in served["paths"]["/notes"]["post"]["responses"]


def test_framework_openapi_prints_the_document() -> None:
    result = cli("openapi", "example_app.main:app")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    validate(doc)
    assert "/orders/{order_id}" in doc["paths"]

"""Reading a request body within a byte limit (HTTP routes and SSE ``POST``)."""

from __future__ import annotations

from starlette.requests import Request


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` when it is larger than ``limit`` bytes: refused from its
    ``Content-Length`` before reading, or as soon as the bytes read pass the limit, so
    the server never holds more than ``limit`` plus one chunk."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)

"""JSON on the wire: one encoder for every transport and reply."""

from __future__ import annotations

from typing import Any

import pydantic_core


def encode(value: Any) -> bytes:
    """Encode a reply or payload as JSON bytes (pydantic models, dataclasses, datetimes...).

    ``bytes`` pass through untouched, so a caller can send pre-encoded JSON.
    """
    if type(value) is bytes:
        return value
    return pydantic_core.to_json(value)


def decode(data: bytes | str) -> Any:
    """Decode JSON bytes; raises ``ValueError`` on malformed input."""
    return pydantic_core.from_json(data)


def to_jsonable(value: Any) -> Any:
    """A value made of dicts, lists and scalars, ready for ``json.dumps``-style framing."""
    return pydantic_core.to_jsonable_python(value)

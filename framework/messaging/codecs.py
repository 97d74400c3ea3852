"""JSON on the wire: one encoder for every transport and reply."""

from __future__ import annotations

from typing import Any

import pydantic_core

_to_json = pydantic_core.to_json


def encode(value: Any) -> bytes:
    """Encode a reply or payload as JSON bytes (pydantic models, dataclasses, datetimes...).

    ``bytes`` pass through untouched, so a caller can send pre-encoded JSON. ``NaN`` and
    infinities become ``null``, as ``JSON.stringify`` does: JSON has no such numbers,
    and a reply must stay parseable by every client.

    Raises:
        pydantic_core.PydanticSerializationError: the value has no JSON form.
    """
    if type(value) is bytes:
        return value
    return _to_json(value, inf_nan_mode="null")


def decode(data: bytes | str) -> Any:
    """Decode JSON bytes; raises ``ValueError`` on malformed input."""
    return pydantic_core.from_json(data)

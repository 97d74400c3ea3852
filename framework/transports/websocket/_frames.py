"""The JSON frame format as plain functions: parsing and encoding, no I/O.

Inbound: ``{"event": <pattern>, "data": <payload>}`` with an optional ``"id"`` (a request
whose replies carry the same id) and optional ``"headers"`` (an object of strings).

Outbound:

- a reply: ``{"event": e, "data": d}`` plus ``"id"`` when the request had one;
- a stream item: the same plus ``"more": true``; the end of a stream:
  ``{"event": e, "done": true}`` plus ``"id"``;
- an error: ``{"event": "exception", "data": {"status": "error", "message": m, "id": i}}``
  plus a top-level ``"id"`` when the request had one;
- a pushed event: ``{"event": pattern, "data": payload}``.

Frames are built by joining pre-encoded byte strings: the JSON of a payload is encoded
once and never parsed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic_core

from framework.messaging._cache import NameCache
from framework.messaging.codecs import encode

EXCEPTION_EVENT = "exception"
SUBSCRIBE_EVENT = "subscribe"
UNSUBSCRIBE_EVENT = "unsubscribe"
CANCEL_EVENT = "cancel"
CONTROL_EVENTS = frozenset({SUBSCRIBE_EVENT, UNSUBSCRIBE_EVENT, CANCEL_EVENT})
"""Events the transport answers itself; no handler may declare them on "ws"."""

_to_json = pydantic_core.to_json
_from_json = pydantic_core.from_json


class FrameError(Exception):
    """An inbound frame the transport cannot route.

    Attributes:
        message: what the client is told in the exception frame.
        id: the frame's id when it could be read, so the client can match the error.
    """

    def __init__(self, message: str, id: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.id = id

    def payload(self) -> dict[str, Any]:
        return {"status": "error", "message": self.message}


def parse(raw: str | bytes) -> tuple[str, Any, Any, Mapping[str, Any] | None, dict[str, Any]]:
    """``(event, data, id, headers, frame)`` of a frame; ``FrameError`` when it is not
    one (``frame`` is the whole decoded object)."""
    try:
        frame = _from_json(raw)
    except ValueError:
        raise FrameError("Malformed JSON frame") from None
    if frame.__class__ is not dict:
        raise FrameError('A frame is a JSON object: {"event": ..., "data": ...}')
    fid = frame.get("id")
    if fid is not None and (fid.__class__ is not int and fid.__class__ is not str):
        raise FrameError('A frame "id" is a string or an integer')
    event = frame.get("event")
    if event.__class__ is not str or not event:
        raise FrameError('The frame has no "event" string', fid)
    headers = frame.get("headers")
    if headers is not None and headers.__class__ is not dict:
        raise FrameError('Frame "headers" must be an object', fid)
    return event, frame.get("data"), fid, headers, frame


def encode_id(fid: Any) -> bytes:
    if fid.__class__ is int:
        return str(fid).encode()
    return _to_json(fid)


class FrameEncoder:
    """Builds outbound frames from pre-encoded JSON; caches each event's prefix."""

    __slots__ = ("_prefixes",)

    def __init__(self) -> None:
        # One per event name; names come from clients, so a ``NameCache``.
        self._prefixes: NameCache[bytes] = NameCache()

    def prefix(self, event: str) -> bytes:
        """``{"event":<event>,"data":`` encoded once per event name."""
        found = self._prefixes.get(event)
        if found is not None:
            return found
        return self._prefixes.keep(event, b'{"event":' + _to_json(event) + b',"data":')

    def message(self, event: str, data_json: bytes) -> bytes:
        """A pushed event or an id-less reply."""
        return self.prefix(event) + data_json + b"}"

    def reply(self, event: str, data_json: bytes, fid: Any) -> bytes:
        if fid is None:
            return self.prefix(event) + data_json + b"}"
        return b"".join((self.prefix(event), data_json, b',"id":', encode_id(fid), b"}"))

    def item(self, event: str, data_json: bytes, fid: Any) -> bytes:
        """One item of a streamed reply."""
        if fid is None:
            return self.prefix(event) + data_json + b',"more":true}'
        return b"".join(
            (self.prefix(event), data_json, b',"id":', encode_id(fid), b',"more":true}')
        )

    def done(self, event: str, fid: Any) -> bytes:
        """The end of a streamed reply."""
        if fid is None:
            return b'{"event":' + _to_json(event) + b',"done":true}'
        return b'{"event":' + _to_json(event) + b',"id":' + encode_id(fid) + b',"done":true}'

    def exception(self, payload: Mapping[str, Any], fid: Any) -> bytes:
        """An error frame; the id is inside ``data`` (NestJS-style clients read only
        ``data``) and at the top level (like every other reply)."""
        # ``encode``: a validation error echoes the input, which may hold NaN.
        if fid is None:
            return encode({"event": EXCEPTION_EVENT, "data": payload})
        return encode({"event": EXCEPTION_EVENT, "data": {**payload, "id": fid}, "id": fid})

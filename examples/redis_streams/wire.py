"""The Redis Streams wire format: stream keys and entry fields. Pure code, no I/O.

Requests and events go to the stream ``<prefix><pattern>`` as entries with fields:

- ``data``: the payload, JSON.
- ``headers``: optional, a JSON object of string headers.
- ``key``: optional, the key given to ``emit`` (handlers see it; Redis does not use it).
- requests only: ``id`` (correlation id), ``reply`` (the stream to answer on),
  ``deadline`` (ms since the epoch after which the caller no longer waits) and
  ``stream`` (``1`` when the caller iterates a stream of replies).

Replies go to the ``reply`` stream, one entry per reply item, with fields ``id``, ``n``
(the item's index, from 0: a gap means Redis trimmed replies the reader had not read),
then ``data`` (a value) or ``err`` (an error body, JSON), and ``end`` (``1``) on the last
one. A reply stream opens with an entry holding only ``open``, which readers skip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NAME = "redis-streams"
"""The transport's name: in ``transports=[...]`` of a handler, and ``ctx.transport``."""

DATA, HEADERS, KEY = b"data", b"headers", b"key"
ID, REPLY, DEADLINE, STREAM = b"id", b"reply", b"deadline", b"stream"
N, ERR, END, OPEN = b"n", b"err", b"end", b"open"

Fields = dict[bytes, bytes]


def stream_key(prefix: str, pattern: str) -> str:
    """The stream that requests and events for ``pattern`` go to."""
    return prefix + pattern


def reply_key(prefix: str, client_id: str) -> str:
    """A client's reply stream (``reply:`` patterns are reserved for it)."""
    return f"{prefix}reply:{client_id}"


def dead_letter_key(prefix: str, pattern: str) -> str:
    """Where entries that failed ``max_deliveries`` times go (``dlq:`` is reserved)."""
    return f"{prefix}dlq:{pattern}"


def _headers(headers: Mapping[str, str] | None) -> Fields:
    return {HEADERS: json.dumps(dict(headers)).encode()} if headers else {}


def event_fields(
    data: bytes, key: str | bytes | None = None, headers: Mapping[str, str] | None = None
) -> Fields:
    fields = {DATA: data, **_headers(headers)}
    if key is not None:
        fields[KEY] = key.encode() if isinstance(key, str) else key
    return fields


def request_fields(
    data: bytes,
    cid: str,
    reply: str,
    deadline_ms: int,
    *,
    stream: bool = False,
    headers: Mapping[str, str] | None = None,
) -> Fields:
    fields = {
        DATA: data,
        ID: cid.encode(),
        REPLY: reply.encode(),
        DEADLINE: str(deadline_ms).encode(),
        **_headers(headers),
    }
    if stream:
        fields[STREAM] = b"1"
    return fields


@dataclass(slots=True)
class Message:
    """A request or event entry as the server reads it."""

    data: bytes
    cid: str | None = None
    reply: str | None = None
    deadline_ms: int | None = None
    stream: bool = False
    key: bytes | None = None
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def is_request(self) -> bool:
        return self.cid is not None and self.reply is not None


def parse_entry(fields: Mapping[bytes, bytes]) -> Message:
    """Read an entry's fields; unknown fields are ignored, a missing ``data`` is null.

    Raises:
        ValueError: ``deadline`` is not an integer or ``headers`` not a JSON object.
    """
    cid, reply, deadline = fields.get(ID), fields.get(REPLY), fields.get(DEADLINE)
    headers: dict[str, Any] = {}
    raw_headers = fields.get(HEADERS)
    if raw_headers:
        headers = json.loads(raw_headers)
        if not isinstance(headers, dict):
            raise ValueError("headers must be a JSON object")
    return Message(
        data=fields.get(DATA, b"null"),
        cid=cid.decode() if cid is not None else None,
        reply=reply.decode() if reply is not None else None,
        deadline_ms=int(deadline) if deadline is not None else None,
        stream=fields.get(STREAM) == b"1",
        key=fields.get(KEY),
        headers=headers,
    )


def reply_fields(
    cid: str, n: int, *, data: bytes | None = None, err: bytes | None = None, end: bool = False
) -> Fields:
    fields = {ID: cid.encode(), N: str(n).encode()}
    if data is not None:
        fields[DATA] = data
    if err is not None:
        fields[ERR] = err
    if end or err is not None:
        fields[END] = b"1"
    return fields


@dataclass(slots=True)
class Reply:
    """One reply entry as the client reads it (values still JSON)."""

    cid: str
    n: int
    data: bytes | None
    err: bytes | None
    end: bool


def parse_reply(fields: Mapping[bytes, bytes]) -> Reply | None:
    """The reply in ``fields``, or ``None`` for the opening entry or a malformed one."""
    cid, n = fields.get(ID), fields.get(N)
    if cid is None or n is None or not n.isdigit():
        return None
    err = fields.get(ERR)
    return Reply(
        cid=cid.decode(errors="replace"),
        n=int(n),
        data=fields.get(DATA),
        err=err,
        end=fields.get(END) == b"1" or err is not None,
    )

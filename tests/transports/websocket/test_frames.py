"""The frame format as plain functions: no sockets, no event loop."""

from __future__ import annotations

import json

import pytest

from framework.transports.websocket._frames import FrameEncoder, FrameError, parse
from framework.transports.websocket._handshake import RedactQueryFilter, origin_allowed


def test_parse_reads_event_data_id_and_headers() -> None:
    event, data, fid, headers, frame = parse(
        b'{"event":"a.b","data":{"x":1},"id":"r1","headers":{"trace":"t"}}'
    )
    assert (event, data, fid, headers) == ("a.b", {"x": 1}, "r1", {"trace": "t"})
    assert frame["event"] == "a.b"
    assert parse('{"event":"e"}')[:3] == ("e", None, None)


@pytest.mark.parametrize(
    ("raw", "message", "fid"),
    [
        (b"{", "Malformed JSON frame", None),
        (b"\xff\xfe", "Malformed JSON frame", None),
        (b'"text"', 'A frame is a JSON object: {"event": ..., "data": ...}', None),
        (b'{"event": 3, "id": 2}', 'The frame has no "event" string', 2),
        (b'{"event": "", "id": 2}', 'The frame has no "event" string', 2),
        (b'{"event": "e", "id": [1]}', 'A frame "id" is a string or an integer', None),
        (b'{"event": "e", "id": 1, "headers": [1]}', 'Frame "headers" must be an object', 1),
    ],
)
def test_parse_rejects_what_is_not_a_frame(raw: bytes, message: str, fid: object) -> None:
    with pytest.raises(FrameError) as info:
        parse(raw)
    assert (info.value.message, info.value.id) == (message, fid)


def test_encoder_builds_every_outbound_frame() -> None:
    enc = FrameEncoder()
    assert json.loads(enc.reply("e", b"[1]", 5)) == {"event": "e", "data": [1], "id": 5}
    assert json.loads(enc.reply("e", b"1", None)) == {"event": "e", "data": 1}
    assert json.loads(enc.reply('q"e', b"1", "x")) == {"event": 'q"e', "data": 1, "id": "x"}
    assert json.loads(enc.item("e", b"2", 5)) == {"event": "e", "data": 2, "id": 5, "more": True}
    assert json.loads(enc.done("e", 5)) == {"event": "e", "id": 5, "done": True}
    assert json.loads(enc.done("e", None)) == {"event": "e", "done": True}
    error = {"status": "error", "message": "m"}
    assert json.loads(enc.exception(error, 5)) == {
        "event": "exception",
        "data": {"status": "error", "message": "m", "id": 5},
        "id": 5,
    }
    assert json.loads(enc.exception(error, None)) == {"event": "exception", "data": error}
    assert json.loads(enc.message("orders.new", b'{"id":1}')) == {
        "event": "orders.new",
        "data": {"id": 1},
    }


def test_origin_rules() -> None:
    allowed = frozenset({"https://a.example"})
    assert origin_allowed("https://a.example", allowed)
    assert not origin_allowed("https://b.example", allowed)
    assert origin_allowed(None, allowed)  # not a browser
    assert origin_allowed("https://b.example", None)


def test_redaction_filter_strips_query_strings() -> None:
    import logging

    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        "",
        0,
        '%s - "WebSocket %s" [accepted]',
        ("1.2.3.4:5", "/ws?token=hunter2"),
        None,
    )
    assert RedactQueryFilter().filter(record)
    assert "hunter2" not in record.getMessage()
    assert "/ws?<redacted>" in record.getMessage()

"""Generated WebSocket frames: the parser alone, then a real server over one real
connection. Allowed outcomes: a reply, the documented ``exception`` frame, or nothing
(events); every frame the server sends is strict JSON; the connection keeps serving."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from websockets.sync.client import ClientConnection, connect

from framework.transports.websocket import WebSocketTransport
from framework.transports.websocket._frames import FrameError, parse
from tests.fuzz.app import make_app, served_in_thread
from tests.fuzz.strategies import raw_frames
from tests.timing import TIME_FACTOR


@given(raw_frames)
def test_parse_returns_a_frame_or_raises_frame_error(raw: str | bytes) -> None:
    try:
        event, _data, fid, headers, frame = parse(raw)
    except FrameError as err:
        assert err.payload()["status"] == "error" and err.message
        return
    assert isinstance(event, str) and event
    assert fid is None or type(fid) in (int, str)
    assert headers is None or isinstance(headers, dict)
    assert isinstance(frame, dict)


def strict(text: str | bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def ws() -> Iterator[ClientConnection]:
    app = make_app(WebSocketTransport("/ws"))
    with (
        served_in_thread(app) as port,
        connect(f"ws://127.0.0.1:{port}/ws", compression=None) as conn,
    ):
        yield conn


_probes = itertools.count()


def _expected(raw: str | bytes) -> Any:
    """The reply data a valid ``echo`` request must get, or ``...`` when the frame is
    not one (any documented outcome is then allowed)."""
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return ...
    if not isinstance(frame, dict) or frame.get("event") != "echo":
        return ...
    fid, headers = frame.get("id"), frame.get("headers")
    if type(fid) not in (int, str) or (headers is not None and not isinstance(headers, dict)):
        return ...
    return fid, frame.get("data")


@given(raw_frames)
def test_generated_frames_get_documented_answers_and_the_connection_serves(
    ws: ClientConnection, raw: str | bytes
) -> None:
    ws.send(raw)
    probe = f"\x00probe-{next(_probes)}"
    ws.send(json.dumps({"event": "echo", "data": probe, "id": probe}))
    expected = _expected(raw)
    answered = False
    while True:
        frame = strict(ws.recv(timeout=10 * TIME_FACTOR))
        assert isinstance(frame, dict) and isinstance(frame.get("event"), str), frame
        if frame["event"] == "exception":
            data = frame["data"]
            assert data["status"] == "error" and isinstance(data["message"], str), frame
            assert "internal detail" not in data["message"]
        if frame.get("id") == probe:
            assert frame == {"event": "echo", "data": probe, "id": probe}
            break
        if (
            expected is not ...
            and frame["event"] in ("echo", "exception")  # not a stream's late items
            and frame.get("id") == expected[0]
            and not answered
        ):
            assert frame == {"event": "echo", "data": expected[1], "id": expected[0]}
            answered = True
    assert expected is ... or answered or expected[0] == probe

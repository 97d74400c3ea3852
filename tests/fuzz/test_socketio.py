"""Generated Socket.IO packets: the parsers alone, then a real server over one real
Engine.IO WebSocket. Allowed outcomes: the ack the protocol says, the documented
``exception`` event, nothing (events without an ack), or the connection closing for a
packet that breaks the protocol; everything the server sends is strict JSON; a fresh
connection is served after each closing one."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from framework.transports.socketio import SocketIoTransport
from framework.transports.socketio._packets import PacketError, decode, decode_event
from tests.fuzz.app import make_app, served_in_thread
from tests.fuzz.strategies import json_values, names
from tests.fuzz.test_websocket import strict
from tests.timing import TIME_FACTOR

TIMEOUT = 10 * TIME_FACTOR


@st.composite
def packets(draw: st.DrawFn) -> str:
    """Socket.IO packet text (what follows the Engine.IO ``4``): well-formed events with
    and without ack ids and namespaces, other packet types, and plain garbage."""
    args = draw(st.lists(json_values, max_size=3))
    event = json.dumps([draw(names), *args])
    ack = draw(st.one_of(st.just(""), st.integers(0, 10**6).map(str)))
    nsp = draw(st.sampled_from(["", "/", "/nope,", "/admin,"]))
    return draw(
        st.one_of(
            st.just("2" + ack + event),
            st.just("2" + nsp + ack + event),
            st.just(draw(st.sampled_from("0123456")) + nsp + ack + json.dumps(args)),
            st.just("5" + draw(st.integers(0, 3).map(str)) + "-" + ack + event),
            st.text(max_size=40),
        )
    )


@given(packets())
def test_parsers_return_a_packet_or_raise_packet_error(text: str) -> None:
    try:
        fast = decode_event(text)
    except PacketError:
        fast = None
    try:
        pkt = decode(text)
    except PacketError:
        return
    assert 0 <= pkt.type <= 6 and pkt.namespace.startswith("/")
    assert pkt.id is None or pkt.id >= 0
    if fast is not None:  # the fast path agrees with the full parser
        assert (fast[0], fast[1]) == (pkt.id, pkt.data)


def _leaves_default_namespace(text: str) -> bool:
    try:
        pkt = decode(text)
    except PacketError:
        return False
    return pkt.type == 1 and pkt.namespace == "/"


class Connection:
    """One Engine.IO WebSocket in the default namespace, reopened when the server
    closes it (a packet that broke the protocol)."""

    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        self.conn: ClientConnection | None = None
        self.stack = contextlib.ExitStack()
        self.reopened = 0

    def open(self) -> ClientConnection:
        if self.conn is None:
            conn = self.stack.enter_context(connect(self.url, compression=None))
            assert conn.recv(timeout=TIMEOUT).startswith("0{")
            conn.send("40")
            assert conn.recv(timeout=TIMEOUT).startswith("40{")
            self.conn = conn
        return self.conn

    def recv(self) -> str:
        conn = self.open()
        while True:
            frame = conn.recv(timeout=TIMEOUT)
            assert isinstance(frame, str)
            if frame != "2":
                return frame
            conn.send("3")

    def close(self) -> None:
        self.stack.close()


@pytest.fixture(scope="module")
def sio() -> Iterator[Connection]:
    app = make_app(SocketIoTransport(ping_interval=None))
    with served_in_thread(app) as port:
        connection = Connection(port)
        yield connection
        connection.close()


_probes = itertools.count(10**7)


@given(packets())
def test_generated_packets_get_documented_answers_and_the_server_serves(
    sio: Connection, text: str
) -> None:
    conn = sio.open()
    conn.send("4" + text)
    probe = next(_probes)
    try:
        if _leaves_default_namespace(text):
            conn.send("40")  # the client left "/" on purpose: it connects again
        conn.send(f'42{probe}["echo","probe"]')
        while True:
            frame = sio.recv()
            assert frame.startswith("4"), frame  # a Socket.IO packet, nothing else
            kind, body = frame[1], frame[2:]
            if kind == "3" and body.startswith(str(probe)):
                assert strict(body[len(str(probe)) :]) == ["probe"]
                return
            if body.startswith("/"):  # a namespace (it never holds a comma) and ","
                body = body.split(",", 1)[1] if "," in body else ""
            if kind == "1":  # a DISCONNECT has no data
                continue
            decoded: Any = strict(body.lstrip("0123456789"))
            if kind == "2" and decoded[0] == "exception":
                error = decoded[1]
                assert error["status"] == "error" and isinstance(error["message"], str)
                assert "internal detail" not in error["message"]
    except ConnectionClosed:
        # The packet broke the protocol: that connection is closed, a new one is served.
        sio.conn = None
        sio.reopened += 1
        sio.open().send(f'42{probe}["echo","again"]')
        assert strict(sio.recv()[2 + len(str(probe)) :]) == ["again"]

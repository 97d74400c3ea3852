"""python-socketio's ``AsyncClient`` (the reference Python client) against the transport:
acks, arguments, errors, namespaces, guards at connect, rooms, pushes and streams, over
WebSocket, long-polling and the upgrade between them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import socketio
import websockets

from framework import ConfigurationError
from tests.transports.socketio.app import TIMEOUT, Seen, served

TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],
}


class Inbox:
    """Events a client received, awaitable one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def listener(self, name: str) -> Callable[..., None]:
        def on(*args: Any) -> None:
            self.queue.put_nowait((name, args[0] if len(args) == 1 else list(args)))

        return on

    async def next(self) -> tuple[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            return await self.queue.get()


@asynccontextmanager
async def client(
    url: str,
    transports: list[str],
    *,
    namespaces: list[str] | None = None,
    auth: Any = None,
    events: tuple[str, ...] = ("exception", "shouted", "stream", "orders.created", "news"),
) -> AsyncIterator[tuple[socketio.AsyncClient, Inbox]]:
    sio = socketio.AsyncClient(reconnection=False)
    inbox = Inbox()
    for name in events:
        for ns in namespaces or ["/"]:
            sio.on(name, inbox.listener(name), namespace=ns)
    await sio.connect(
        url, transports=transports, namespaces=namespaces or ["/"], auth=auth, wait_timeout=TIMEOUT
    )
    try:
        yield sio, inbox
    finally:
        await sio.disconnect()


async def refusal(
    url: str, *, namespace: str = "/", auth: Any = None, transports: list[str] | None = None
) -> Any:
    """The ``connect_error`` data a client gets when the server refuses it."""
    sio = socketio.AsyncClient(reconnection=False)
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    sio.on("connect_error", lambda data: got.done() or got.set_result(data), namespace=namespace)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            url,
            transports=transports or ["websocket"],
            namespaces=[namespace],
            auth=auth,
            wait_timeout=TIMEOUT,
        )
    await sio.disconnect()
    async with asyncio.timeout(TIMEOUT):
        return await got


@pytest.fixture(params=list(TRANSPORTS))
def transports(request: pytest.FixtureRequest) -> list[str]:
    return TRANSPORTS[request.param]


async def test_acks_carry_the_handlers_results(transports: list[str]) -> None:
    async with served() as (_, _t, url), client(url, transports) as (sio, inbox):
        assert sio.transport() == transports[-1]
        assert await sio.call("echo", {"text": "hi"}, timeout=TIMEOUT) == {"text": "hi"}
        # Several arguments arrive as a list, as NestJS's mapPayload passes them.
        assert await sio.call("sum", (1, 2, 3), timeout=TIMEOUT) == 6
        # A null result still answers the ack (NestJS leaves it waiting).
        assert await sio.call("nothing", {"text": "x"}, timeout=TIMEOUT) is None
        # A WsResponse is emitted as its own event; the ack gets its data too.
        assert await sio.call("shout", {"text": "hey"}, timeout=TIMEOUT) == {"text": "HEY"}
        assert await inbox.next() == ("shouted", {"text": "HEY"})


async def test_errors_are_exception_events_and_never_leave_an_ack_waiting(
    transports: list[str],
) -> None:
    async with served() as (_, _t, url), client(url, transports) as (sio, inbox):
        cases = {
            "echo": ({"wrong": 1}, "Validation failed"),
            "boom": ({"text": "x"}, "Internal server error"),
            "refuse": ({"text": "x"}, "not today"),
            "no.such.event": ({"text": "x"}, "There is no matching message handler"),
        }
        for event, (data, message) in cases.items():
            ack = await sio.call(event, data, timeout=TIMEOUT)
            assert ack["status"] == "error" and ack["message"].startswith(message), ack
            name, body = await inbox.next()
            assert name == "exception" and body == ack
        assert "secret detail" not in str(cases)
        # The connection still serves.
        assert await sio.call("echo", {"text": "after"}, timeout=TIMEOUT) == {"text": "after"}


async def test_an_event_without_an_ack_runs_the_event_handler() -> None:
    async with served() as (app, _t, url), client(url, ["websocket"]) as (sio, _):
        await sio.emit("note", {"text": "fire and forget"})
        seen = app.get(Seen)
        assert await seen.wait_for("note") == "fire and forget"


async def test_namespaces_serve_their_own_gateways_and_unknown_ones_are_refused() -> None:
    async with served() as (_, _t, url):
        async with client(
            url, ["websocket"], namespaces=["/", "/admin"], auth={"token": "let-me-in"}
        ) as (sio, _):
            assert await sio.call("whoami", None, namespace="/admin", timeout=TIMEOUT) == "ann"
            # The default namespace does not serve the admin gateway's events.
            ack = await sio.call("whoami", None, timeout=TIMEOUT)
            assert ack["status"] == "error"
        assert await refusal(url, namespace="/nope") == {"message": "Invalid namespace"}


async def test_gateway_guards_run_at_connect_and_refuse_with_their_message() -> None:
    async with served() as (_, _t, url):
        got = await refusal(url, namespace="/admin", auth={"token": "wrong"})
        assert got == {"message": "Invalid token"}


async def test_transport_guards_see_the_auth_payload_and_headers() -> None:
    checked: list[tuple[Any, str | None]] = []

    def guard(handshake: Any) -> bool:
        checked.append((handshake.auth, handshake.headers.get("x-team")))
        return bool(handshake.auth.get("ok"))

    async with served(guards=[guard]) as (_, _t, url):
        assert await refusal(url, auth={"ok": False}) == {"message": "Forbidden resource"}
        async with client(url, ["polling"], auth={"ok": True}) as (sio, _):
            assert await sio.call("echo", {"text": "in"}, timeout=TIMEOUT) == {"text": "in"}
    assert checked[0][0] == {"ok": False} and checked[1][0] == {"ok": True}


async def test_rooms_broadcasts_and_published_patterns_reach_the_right_sockets() -> None:
    async with (
        served() as (app, transport, url),
        client(url, ["websocket"]) as (a, inbox_a),
        client(url, ["polling"]) as (b, inbox_b),
    ):
        assert await a.call("join", "room-1", timeout=TIMEOUT) == ["room-1"]
        assert transport.broadcast("news", {"n": 1}, room="room-1") == 1
        assert await inbox_a.next() == ("news", {"n": 1})
        assert transport.broadcast("news", {"n": 2}) == 2
        assert await inbox_a.next() == ("news", {"n": 2})
        assert await inbox_b.next() == ("news", {"n": 2})
        # emit: broadcast on every instance (here, without a relay, this one).
        await transport.emit("news", {"n": 3}, room="room-1")
        assert await inbox_a.next() == ("news", {"n": 3})
        assert await b.call("subscribe", ["orders.*"], timeout=TIMEOUT) == ["orders.*"]
        await app.publish("orders.created", {"id": 7})
        assert await inbox_b.next() == ("orders.created", {"id": 7})
        assert inbox_a.queue.empty()


async def test_streams_send_items_then_done_and_cancel_ends_them() -> None:
    async with served() as (app, _t, url), client(url, ["websocket"]) as (sio, inbox):
        await sio.emit("stream", {"id": "s1", "event": "count", "data": 2})
        assert await inbox.next() == ("stream", {"id": "s1", "data": 0})
        assert await inbox.next() == ("stream", {"id": "s1", "data": 1})
        assert await inbox.next() == ("stream", {"id": "s1", "done": True})
        # With a plain ack, a streamed result answers with its last item.
        assert await sio.call("count", 3, timeout=TIMEOUT) == 2
        await sio.emit("stream", {"id": 9, "event": "forever", "data": 0})
        assert (await inbox.next())[1]["id"] == 9
        assert await sio.call("cancel", 9, timeout=TIMEOUT) is True
        async with asyncio.timeout(TIMEOUT):
            await app.get(Seen).stream_closed.wait()


async def _raw_session(url: str) -> Any:
    """A hand-driven Engine.IO WebSocket connected to the default namespace."""
    ws = await websockets.connect(
        url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", compression=None
    )
    async with asyncio.timeout(TIMEOUT):
        opened = await ws.recv()
        assert opened.startswith("0{")
        await ws.send("40")
        assert (await ws.recv()).startswith("40{")
    return ws


@pytest.mark.parametrize(
    "packet",
    [
        "42[not json",  # an event whose data is not JSON
        '42{"event": "echo"}',  # an event that is not an array
        "9hello",  # no such Engine.IO packet type
        "47[1]",  # no such Socket.IO packet type
        "4" + "2" + "[" + '"x",' * 10 + '"' + "y" * 1_100_000 + '"]',  # over max_payload
        b"\xff\xfe",  # a binary attachment no packet announced
    ],
    ids=["bad-json", "not-array", "engine-type", "sio-type", "too-big", "stray-binary"],
)
async def test_a_malformed_packet_closes_only_its_connection(serve: Any, packet: Any) -> None:
    async with serve() as (_, _t, url), client(url, ["websocket"]) as (good, _):
        bad = await _raw_session(url)
        await bad.send(packet)
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await bad.recv()
        assert await good.call("echo", {"text": "still"}, timeout=TIMEOUT) == {"text": "still"}


async def test_disconnect_calls_the_gateway_hook() -> None:
    async with served() as (app, _t, url):
        async with client(url, ["websocket"]):
            sid = await app.get(Seen).wait_for("connected")
        assert await app.get(Seen).wait_for("disconnected") == sid


async def test_max_concurrency_lets_a_fast_event_pass_a_slow_one() -> None:
    async with (
        served(max_concurrency=4) as (app, _t, url),
        client(url, ["websocket"]) as (sio, _),
    ):
        slow = asyncio.create_task(sio.call("wait", {"text": "slow"}, timeout=TIMEOUT))
        assert await sio.call("echo", {"text": "fast"}, timeout=TIMEOUT) == {"text": "fast"}
        assert not slow.done()
        app.get(Seen).release.set()
        assert await slow == "slow"


async def test_by_default_a_connections_events_are_handled_in_order() -> None:
    async with served() as (app, _t, url), client(url, ["websocket"]) as (sio, _):
        seen = app.get(Seen)
        slow = asyncio.create_task(sio.call("wait", {"text": "slow"}, timeout=TIMEOUT))
        assert await seen.wait_for("waiting") == "slow"
        fast = asyncio.create_task(sio.call("echo", {"text": "fast"}, timeout=TIMEOUT))
        # What must not happen has to be given a time: the fast one waits behind.
        done, _ = await asyncio.wait({fast}, timeout=0.3)
        assert not done
        seen.release.set()
        done, _ = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
        assert slow in done
        assert await slow == "slow" and await fast == {"text": "fast"}


async def test_patterns_starting_with_a_dollar_are_reserved_for_peer_messages() -> None:
    async with served() as (app, _t, url), client(url, ["websocket"]) as (sio, inbox):
        assert await sio.call("subscribe", "#", timeout=TIMEOUT) == ["#"]
        with pytest.raises(ConfigurationError, match="reserved"):
            await app.publish("$socketio.broadcast", {"x": 1})
        # A peer message is never delivered to subscribers, even of "#".
        await app.to_peers("socketio.broadcast", b'{"namespace": "/nope"}')
        await app.publish("orders.created", 1)
        assert await inbox.next() == ("orders.created", 1)


async def test_the_server_can_ask_the_client_for_an_ack() -> None:
    async with served(max_concurrency=2) as (_, _t, url), client(url, ["websocket"]) as (sio, _):
        sio.on("question", lambda n: n + 1)
        assert await sio.call("ask", 40, timeout=TIMEOUT) == 42


async def test_asking_back_from_a_one_at_a_time_connection_is_a_clear_error() -> None:
    async with served() as (_, _t, url), client(url, ["websocket"]) as (sio, inbox):
        sio.on("question", lambda n: n + 1)
        ack = await sio.call("ask", 40, timeout=TIMEOUT)
        assert ack == {"status": "error", "message": "Internal server error"}
        assert (await inbox.next())[0] == "exception"

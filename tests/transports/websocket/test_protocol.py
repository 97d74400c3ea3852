"""The WebSocket wire protocol, seen from a plain ``websockets`` client."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from framework.transports.websocket import Handshake, WebSocketTransport
from tests.timing import TIME_FACTOR
from tests.transports.websocket.app import (
    TIMEOUT,
    Events,
    Serve,
    raw_client,
    recv_json,
    send_json,
    served,
)


@pytest.fixture(params=["asgi", "asgi-sansio", "standalone"])
def serve(request: pytest.FixtureRequest) -> Serve:
    """``served`` on the app's HTTP port (picows, or uvicorn's own WebSocket protocol and
    the ASGI endpoint, as under ``uvicorn module:app``) and on the transport's own server."""
    if request.param == "asgi-sansio":
        return functools.partial(served, mode="asgi", uvicorn={"ws": "websockets-sansio"})
    return functools.partial(served, mode=request.param)


NOT_FOUND = "There is no matching message handler defined in the remote service."


async def closed_code(ws: object) -> int | None:
    """Read until the server closes; the close code it sent."""
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                await ws.recv()  # type: ignore[attr-defined]
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


async def test_request_reply_with_and_without_id(serve: Serve) -> None:
    async with serve() as (_, _, url), raw_client(url + "/ws") as ws:
        await send_json(ws, {"event": "order.check", "data": {"id": 1, "total": 2}, "id": 7})
        assert await recv_json(ws) == {
            "event": "order.check",
            "data": {"id": 1, "total": 2.0},
            "id": 7,
        }
        # As NestJS: a frame without id to a message pattern still gets its reply frame.
        await send_json(ws, {"event": "order.check", "data": {"id": 2, "total": 1}})
        assert await recv_json(ws) == {"event": "order.check", "data": {"id": 2, "total": 1.0}}
        await send_json(ws, {"event": "renamed", "data": [1], "id": "a"})
        assert await recv_json(ws) == {"event": "renamed.reply", "data": [1], "id": "a"}


async def test_stream_sends_items_then_an_end_marker(serve: Serve) -> None:
    async with serve() as (_, _, url), raw_client(url + "/ws") as ws:
        await send_json(ws, {"event": "ticks", "data": 2, "id": 3})
        assert await recv_json(ws) == {"event": "ticks", "data": 0, "id": 3, "more": True}
        assert await recv_json(ws) == {"event": "ticks", "data": 1, "id": 3, "more": True}
        assert await recv_json(ws) == {"event": "ticks", "id": 3, "done": True}


async def test_cancel_stops_a_stream(serve: Serve) -> None:
    async with serve() as (_, _, url), raw_client(url + "/ws") as ws:
        await send_json(ws, {"event": "forever", "data": None, "id": 1})
        assert (await recv_json(ws))["id"] == 1
        await send_json(ws, {"event": "cancel", "data": 1, "id": 2})
        while (frame := await recv_json(ws)).get("id") == 1:
            pass  # items already on their way
        assert frame == {"event": "cancel", "data": True, "id": 2}
        await send_json(ws, {"event": "ticks", "data": 0, "id": 3})
        assert await recv_json(ws) == {"event": "ticks", "id": 3, "done": True}


@pytest.mark.parametrize(
    ("frame", "message", "fid"),
    [
        ("{not json", "Malformed JSON frame", None),
        ("[1, 2]", 'A frame is a JSON object: {"event": ..., "data": ...}', None),
        ('{"data": 1, "id": 4}', 'The frame has no "event" string', 4),
        ('{"event": "nope", "data": 1, "id": 5}', NOT_FOUND, 5),
        ('{"event": "nope", "data": 1}', NOT_FOUND, None),
    ],
)
async def test_bad_frames_get_one_exception_frame_and_the_connection_stays(
    frame: str, message: str, fid: int | None, serve: Serve
) -> None:
    async with serve() as (_, _, url), raw_client(url + "/ws") as ws:
        await ws.send(frame)
        data = {"status": "error", "message": message}
        expected: dict[str, object] = {"event": "exception", "data": data}
        if fid is not None:
            expected = {"event": "exception", "data": {**data, "id": fid}, "id": fid}
        assert await recv_json(ws) == expected
        await send_json(ws, {"event": "order.check", "data": {"id": 1, "total": 1}, "id": 9})
        assert (await recv_json(ws))["id"] == 9


async def test_validation_error_names_the_fields_and_skips_the_handler(serve: Serve) -> None:
    async with serve() as (app, _, url), raw_client(url + "/ws") as ws:
        await send_json(ws, {"event": "order.check", "data": {"id": "x"}, "id": 1})
        frame = await recv_json(ws)
        assert frame["event"] == "exception" and frame["id"] == 1
        assert frame["data"]["message"] == "Validation failed"
        assert frame["data"]["id"] == 1
        assert {tuple(e["loc"]) for e in frame["data"]["errors"]} == {("id",), ("total",)}
        assert app.get(Events).ran == []


async def test_oversize_frame_closes_1009_before_any_handler_runs(serve: Serve) -> None:
    async with serve(max_message_size=1024) as (app, _, url):
        async with raw_client(url + "/ws", max_size=None) as ws:
            big = {"event": "order.check", "data": {"id": 1, "total": 1, "pad": "x" * 2000}}
            await send_json(ws, big)
            assert await closed_code(ws) == 1009
        assert app.get(Events).ran == []


async def test_events_run_handlers_without_a_reply(serve: Serve) -> None:
    async with serve() as (app, _, url), raw_client(url + "/ws") as ws:
        await send_json(ws, {"event": "note", "data": "hi"})
        await send_json(ws, {"event": "note", "data": "again", "id": 2})
        # An event frame with an id is acknowledged once its handlers ran.
        assert await recv_json(ws) == {"event": "note", "data": None, "id": 2}
        assert app.get(Events).ran == ["note:hi", "note:again"]


async def test_gateway_hooks_and_paths(serve: Serve) -> None:
    async with serve() as (app, transport, url):
        events = app.get(Events)
        assert events.initialised == [transport]  # after_init(transport), once
        async with raw_client(url + "/ws") as ws:
            welcome = json.loads(await ws.recv())
            assert welcome["event"] == "welcome"
            await send_json(ws, {"event": "whoami", "data": None, "id": 1})
            me = (await recv_json(ws))["data"]
            assert me == {"id": welcome["data"]["id"], "user": None, "path": "/ws"}
            # The admin gateway's handlers are served on its own path only.
            await send_json(ws, {"event": "admin.stats", "data": None, "id": 2})
            assert (await recv_json(ws))["data"]["message"] == NOT_FOUND
        gone = await asyncio.wait_for(events.disconnected.get(), TIMEOUT)
        assert gone.id == me["id"] and gone.close_code == 1000
        async with raw_client(url + "/admin") as admin:
            await send_json(admin, {"event": "admin.stats", "data": None, "id": 1})
            assert (await recv_json(admin))["data"] == {"admin": True}
            await send_json(admin, {"event": "whoami", "data": None, "id": 2})
            assert (await recv_json(admin))["data"]["message"] == NOT_FOUND


async def test_rooms_broadcast_to_members_only(serve: Serve) -> None:
    async with (
        serve() as (_, transport, url),
        raw_client(url + "/ws") as a,
        raw_client(url + "/ws") as b,
        raw_client(url + "/ws") as c,
    ):
        for ws in (a, b):
            await send_json(ws, {"event": "join", "data": "eu", "id": 1})
            assert (await recv_json(ws))["data"] == {"joined": "eu", "rooms": ["eu"]}
        assert transport.broadcast("price", {"p": 1}, room="eu") == 2
        assert transport.broadcast("all", 1) == 3
        for ws in (a, b):
            assert await recv_json(ws) == {"event": "price", "data": {"p": 1}}
        assert await recv_json(c) == {"event": "all", "data": 1}  # c never got "price"
        await send_json(b, {"event": "leave", "data": "eu", "id": 2})
        assert (await recv_json(b, skip=("welcome", "all")))["data"] is True
        assert len(transport.room("eu")) == 1


async def test_publish_reaches_subscribers_of_matching_patterns(serve: Serve) -> None:
    async with (
        serve() as (app, _, url),
        raw_client(url + "/ws") as a,
        raw_client(url + "/ws") as b,
    ):
        await send_json(a, {"event": "subscribe", "data": ["orders.*"], "id": 1})
        assert await recv_json(a) == {"event": "subscribe", "data": ["orders.*"], "id": 1}
        await send_json(b, {"event": "subscribe", "data": "stock.#"})
        assert await recv_json(b) == {"event": "subscribe", "data": ["stock.#"]}
        await app.publish("orders.created", {"id": 1})
        await app.publish("stock.eu.low", {"sku": "x"})
        assert await recv_json(a) == {"event": "orders.created", "data": {"id": 1}}
        assert await recv_json(b) == {"event": "stock.eu.low", "data": {"sku": "x"}}
        await send_json(a, {"event": "unsubscribe", "data": "orders.*", "id": 2})
        assert await recv_json(a) == {"event": "unsubscribe", "data": [], "id": 2}
        await app.publish("orders.created", {"id": 2})
        await app.publish("stock.eu.low", {"sku": "y"})
        assert (await recv_json(b))["data"] == {"sku": "y"}
        # ``a`` got nothing more: the next frame it sees is the reply to this request.
        await send_json(a, {"event": "ticks", "data": 0, "id": 3})
        assert await recv_json(a) == {"event": "ticks", "id": 3, "done": True}


async def test_subscription_limits_and_guard(serve: Serve) -> None:
    def only_public(socket: object, pattern: str) -> bool:
        return pattern.startswith("public.")

    async with (
        serve(max_subscriptions=2, can_subscribe=only_public) as (_, _, url),
        raw_client(url + "/ws") as ws,
    ):
        await send_json(ws, {"event": "subscribe", "data": ["secret.x"], "id": 1})
        assert (await recv_json(ws))["data"]["message"] == "Forbidden resource"
        await send_json(ws, {"event": "subscribe", "data": ["public.a", "public.b"], "id": 2})
        assert (await recv_json(ws))["data"] == ["public.a", "public.b"]
        await send_json(ws, {"event": "subscribe", "data": ["public.c"], "id": 3})
        assert "At most 2" in (await recv_json(ws))["data"]["message"]
        await send_json(ws, {"event": "subscribe", "data": ["a.#.b"], "id": 4})
        assert "'#' may only be the last segment" in (await recv_json(ws))["data"]["message"]


async def test_slow_reader_is_disconnected_and_others_keep_receiving(serve: Serve) -> None:
    async with serve(send_queue=8) as (app, transport, url):
        events = app.get(Events)
        async with (
            raw_client(url + "/ws", max_queue=1) as slow,
            raw_client(url + "/ws", max_size=None) as fast,
        ):
            for ws in (slow, fast):
                await send_json(ws, {"event": "subscribe", "data": ["feed"], "id": 1})
            assert (await recv_json(fast))["id"] == 1
            received = 0
            progress = asyncio.Event()

            async def read_fast() -> None:
                nonlocal received
                while True:
                    frame = await recv_json(fast)
                    if frame["event"] == "feed":
                        received += 1
                        progress.set()

            async def fast_has(count: int) -> None:
                while received < count:
                    progress.clear()
                    await progress.wait()

            reader = asyncio.create_task(read_fast())
            payload = "x" * 64 * 1024
            sent = 0
            slow_socket = events.connected[0]
            try:
                async with asyncio.timeout(TIMEOUT * 3):
                    # ``slow`` never reads: its TCP buffers fill, then its send queue.
                    while slow_socket.close_code is None:
                        await app.publish("feed", payload)
                        sent += 1
                        # Pace on ``fast``: it shares this event loop with the server.
                        await fast_has(sent - 2)
                    for _ in range(20):
                        await app.publish("feed", payload)
                        sent += 1
                        await fast_has(sent - 2)
                    await fast_has(sent)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            assert slow_socket.close_code == 1008
            assert received == sent  # every event reached the fast client
            assert len(transport.sockets) == 1  # only ``fast`` is left
            # The slow client, once it reads, finds what was delivered, then the close.
            assert await closed_code(slow) == 1008


async def test_origin_not_allowed_gets_403(serve: Serve) -> None:
    async with serve(allowed_origins=["https://shop.example"]) as (_, _, url):
        with pytest.raises(InvalidStatus) as info:
            async with raw_client(url + "/ws", origin="https://evil.example"):
                pass
        assert info.value.response.status_code == 403
        async with raw_client(url + "/ws", origin="https://shop.example") as ws:
            await send_json(ws, {"event": "ticks", "data": 0, "id": 1})
            assert (await recv_json(ws))["done"] is True


async def test_guard_refuses_before_accept_and_passes_data_on(serve: Serve) -> None:
    async def token_guard(handshake: Handshake) -> bool:
        if handshake.headers.get("authorization") != "Bearer s3cret":
            return False
        handshake.data["user"] = "ada"
        return True

    async with serve(guards=[token_guard]) as (_, _, url):
        with pytest.raises(InvalidStatus) as info:
            async with raw_client(url + "/ws"):
                pass
        assert info.value.response.status_code == 403
        headers = {"Authorization": "Bearer s3cret"}
        async with raw_client(url + "/ws", additional_headers=headers) as ws:
            await send_json(ws, {"event": "whoami", "data": None, "id": 1})
            assert (await recv_json(ws))["data"]["user"] == "ada"


async def test_first_message_authentication(serve: Serve) -> None:
    def authenticate(socket: object, data: object) -> bool:
        if isinstance(data, dict) and data.get("token") == "s3cret":
            socket.data["user"] = "bob"  # type: ignore[attr-defined]
            return True
        return False

    async with serve(authenticate=authenticate, auth_timeout=0.5 * TIME_FACTOR) as (
        _,
        _,
        url,
    ):
        async with raw_client(url + "/ws") as ws:
            await send_json(ws, {"event": "auth", "data": {"token": "wrong"}})
            assert await closed_code(ws) == 1008
        async with raw_client(url + "/ws") as ws:
            assert await closed_code(ws) == 1008  # said nothing within auth_timeout
        async with raw_client(url + "/ws") as ws:
            await send_json(ws, {"event": "auth", "data": {"token": "s3cret"}, "id": 1})
            assert await recv_json(ws) == {"event": "auth", "data": True, "id": 1}
            await send_json(ws, {"event": "whoami", "data": None, "id": 2})
            assert (await recv_json(ws))["data"]["user"] == "bob"


async def test_query_tokens_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    options = {"log_config": None, "log_level": "info"}
    async with (
        served(uvicorn=options) as (_, _, url),
        raw_client(url + "/ws?token=hunter2") as ws,
    ):
        await send_json(ws, {"event": "ticks", "data": 0, "id": 1})
        await recv_json(ws)
    assert "WebSocket" in caplog.text  # uvicorn did log the handshake...
    assert "hunter2" not in caplog.text  # ...without the token


async def test_graceful_shutdown_finishes_handlers_then_closes_1001(serve: Serve) -> None:
    async with serve() as (app, _, url), raw_client(url + "/ws") as ws:
        events = app.get(Events)
        await send_json(ws, {"event": "slow", "data": None, "id": 1})
        await asyncio.wait_for(events.slow_started.wait(), TIMEOUT)
        stopping = asyncio.create_task(app.drain())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # waits for the handler in flight
        events.release_slow.set()
        assert await recv_json(ws) == {"event": "slow", "data": "finished", "id": 1}
        assert await closed_code(ws) == 1001
        await asyncio.wait_for(stopping, TIMEOUT)


async def test_handler_guards_see_the_socket(serve: Serve) -> None:
    async with serve() as (_, _, url), raw_client(url + "/admin") as ws:
        await send_json(ws, {"event": "admin.reset", "data": None, "id": 1})
        assert await recv_json(ws) == {"event": "admin.reset", "data": "reset", "id": 1}
        await send_json(ws, {"event": "admin.demote", "data": None, "id": 2})
        await recv_json(ws)
        await send_json(ws, {"event": "admin.reset", "data": None, "id": 3})
        frame = await recv_json(ws)
        assert frame["data"] == {
            "status": "error",
            "message": "Forbidden resource",
            "statusCode": 403,
            "id": 3,
        }


async def test_max_concurrency_lets_a_fast_request_pass_a_slow_one(serve: Serve) -> None:
    async with serve(max_concurrency=4) as (app, _, url), raw_client(url + "/ws") as ws:
        events = app.get(Events)
        await send_json(ws, {"event": "slow", "data": None, "id": 1})
        await asyncio.wait_for(events.slow_started.wait(), TIMEOUT)
        await send_json(ws, {"event": "ticks", "data": 0, "id": 2})
        assert await recv_json(ws) == {"event": "ticks", "id": 2, "done": True}
        events.release_slow.set()
        assert await recv_json(ws) == {"event": "slow", "data": "finished", "id": 1}


async def test_a_client_that_never_reads_is_dropped_after_close_timeout(serve: Serve) -> None:
    async with serve(send_queue=4, close_timeout=0.2) as (app, transport, url):
        events = app.get(Events)
        # The client's own close_timeout: it stops reading, so it cannot see the drop.
        async with raw_client(url + "/ws", max_queue=1, close_timeout=0.1) as slow:
            await send_json(slow, {"event": "subscribe", "data": "feed", "id": 1})
            await asyncio.wait_for(_until_subscribed(transport), TIMEOUT)
            sock = events.connected[0]
            payload = "x" * 64 * 1024
            async with asyncio.timeout(TIMEOUT):
                while sock.close_code is None:
                    await app.publish("feed", payload)
                    await asyncio.sleep(0.001)
            # The close handshake cannot finish (the client reads nothing): the server
            # gives up after close_timeout, drops the connection and calls on_disconnect.
            gone = await asyncio.wait_for(events.disconnected.get(), TIMEOUT)
            assert gone is sock and sock.close_code == 1008
            assert transport.sockets == {}


async def _until_subscribed(transport: WebSocketTransport) -> None:
    while not any(s.subscriptions for s in transport.sockets.values()):  # noqa: ASYNC110
        await asyncio.sleep(0.01)

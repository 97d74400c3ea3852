"""``app.publish`` and ``transport.emit`` to a room reach Socket.IO clients on every
instance through KafkaRelay: two app processes on a real Apache Kafka broker, a client
on each; what either sends arrives once on both."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from framework.transports.socketio import SocketIoClient
from tests.transports.socketio.app import TIMEOUT
from tests.transports.websocket.test_relay import instances

pytestmark = pytest.mark.kafka


async def test_publish_reaches_socket_io_subscribers_on_every_instance(
    kafka_bootstrap_servers: str,
) -> None:
    async with instances(kafka_bootstrap_servers, 2) as urls:
        http = [u.replace("ws://", "http://").removesuffix("/ws") for u in urls]
        inboxes: list[asyncio.Queue[Any]] = [asyncio.Queue(), asyncio.Queue()]
        clients = [SocketIoClient(u) for u in http]
        for c, inbox in zip(clients, inboxes, strict=True):
            c.on("orders.created", inbox.put_nowait)
        async with clients[0] as a, clients[1] as b:
            for c in (a, b):
                assert await c.subscribe("orders.*") == ["orders.*"]
            for n, firer in enumerate((a, b)):
                assert await firer.send("fire", {"pattern": "orders.created", "data": {"n": n}})
                for inbox in inboxes:
                    async with asyncio.timeout(TIMEOUT):
                        assert await inbox.get() == {"n": n}
            # Exactly once each: nothing else is waiting once a later request is answered.
            for c in (a, b):
                assert await c.send("unsubscribe", "orders.*") == []
            assert all(inbox.empty() for inbox in inboxes)


async def test_a_room_emit_reaches_its_members_on_every_instance(
    kafka_bootstrap_servers: str,
) -> None:
    async with instances(kafka_bootstrap_servers, 2) as urls:
        http = [u.replace("ws://", "http://").removesuffix("/ws") for u in urls]
        inboxes: list[asyncio.Queue[Any]] = [asyncio.Queue(), asyncio.Queue(), asyncio.Queue()]
        clients = [SocketIoClient(http[0]), SocketIoClient(http[1]), SocketIoClient(http[1])]
        for c, inbox in zip(clients, inboxes, strict=True):
            c.on("news", inbox.put_nowait)
        async with clients[0] as a, clients[1] as b, clients[2] as outsider:
            assert await a.send("join", "r") and await b.send("join", "r")
            fire = {"event": "news", "data": {"n": 1}, "room": "r"}
            assert await outsider.send("fire.room", fire)
            for inbox in inboxes[:2]:
                async with asyncio.timeout(TIMEOUT):
                    assert await inbox.get() == {"n": 1}
            # Once each, and not to the outsider: a later reply arrives with nothing queued.
            for c in (a, b, outsider):
                assert await c.send("join", "other")
            assert all(inbox.empty() for inbox in inboxes)

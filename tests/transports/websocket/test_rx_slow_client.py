"""A fast Observable against a WebSocket client that stops reading: the bridge's bounded
buffer fills, the stream fails by the default overflow policy, and the Observable is
disposed, instead of frames piling up in memory."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import reactivex
import websockets
from reactivex import operators as ops
from reactivex.abc import ObserverBase, SchedulerBase
from reactivex.disposable import Disposable

from framework import controller, create_app, injectable, message_pattern, module
from framework.rx import from_observable
from framework.transports.websocket import WebSocketTransport
from tests.timing import TIME_FACTOR

BLOB = "x" * 65_536  # big items fill the socket buffers after a few dozen


@injectable()
class Flood:
    def __init__(self) -> None:
        self.emitted = 0
        self.disposed = asyncio.Event()


@controller()
class FloodController:
    def __init__(self, flood: Flood) -> None:
        self.flood = flood

    @message_pattern("rx.flood")
    def run(self, payload: dict[str, Any]) -> Any:
        flood = self.flood

        def subscribe(observer: ObserverBase[int], scheduler: SchedulerBase | None) -> Any:
            inner = reactivex.interval(0.0005).subscribe(observer, scheduler=scheduler)
            return Disposable(lambda: (inner.dispose(), flood.disposed.set()))

        def count(n: int) -> str:
            flood.emitted += 1
            return BLOB

        return from_observable(reactivex.create(subscribe).pipe(ops.map(count)), buffer_size=8)


@module(controllers=[FloodController], providers=[Flood])
class FloodModule:
    pass


async def test_a_client_that_stops_reading_ends_with_disposal_not_growth() -> None:
    transport = WebSocketTransport("/ws", port=0)
    async with create_app(FloodModule, transports=[transport]) as app:
        url = f"ws://127.0.0.1:{transport.bound_port}/ws"
        # A small receive buffer and no reading: the server's writes block soon.
        # (close_timeout: the closing handshake cannot pass the unread frames.)
        async with websockets.connect(url, max_queue=1, max_size=None, close_timeout=0.1) as ws:
            await ws.send(json.dumps({"event": "rx.flood", "data": {}, "id": 1}))
            flood = app.get(Flood)
            await asyncio.wait_for(flood.disposed.wait(), 20 * TIME_FACTOR)
            # What was produced is what the socket took before blocking, plus the
            # bridge's 8: a bounded amount (the send queue holds at most 1024 frames).
            assert flood.emitted < 1024 + 8 + 200

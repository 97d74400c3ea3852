"""One app instance for the cross-instance tests: WebSocket and Socket.IO transports +
KafkaRelay.

Run: ``python -m tests.transports.websocket.relay_app <bootstrap> <topic> <port>``.
A client sends ``{"event": "fire", "data": {"pattern": p, "data": d}}`` to make this
instance call ``app.publish(p, d)``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from framework import Application, create_app, module
from framework.transports.kafka.relay import KafkaRelay
from framework.transports.socketio import SioContext, SocketIoTransport
from framework.transports.websocket import (
    WebSocketTransport,
    subscribe_message,
    websocket_gateway,
)


@websocket_gateway()
class FireGateway:
    def __init__(self, app: Application) -> None:
        self.app = app
        self.sio: SocketIoTransport | None = None

    def after_init(self, transport: Any) -> None:
        if isinstance(transport, SocketIoTransport):
            self.sio = transport

    @subscribe_message("fire")
    async def fire(self, payload: dict[str, Any]) -> bool:
        await self.app.publish(payload["pattern"], payload["data"])
        return True

    @subscribe_message("join")
    async def join(self, room: str, ctx: SioContext) -> bool:
        ctx.socket.join(room)
        return True

    @subscribe_message("fire.room")
    async def fire_room(self, payload: dict[str, Any]) -> bool:
        """Socket.IO only: emit to a room on every instance."""
        assert self.sio is not None
        await self.sio.emit(payload["event"], payload["data"], room=payload["room"])
        return True


@module(providers=[FireGateway])
class RelayModule:
    pass


def main() -> None:
    bootstrap, topic, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    relay = KafkaRelay(bootstrap_servers=bootstrap, topic=topic)
    transports = [WebSocketTransport("/ws"), SocketIoTransport()]
    app = create_app(RelayModule, transports=transports, relay=relay)
    asyncio.run(app.server("127.0.0.1", port, log_level="warning").serve())


if __name__ == "__main__":
    main()

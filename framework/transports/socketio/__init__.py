"""Socket.IO: gateways and handlers for socket.io clients (protocol v5 over Engine.IO v4,
WebSocket and HTTP long-polling), namespaces, rooms, acks, streams, state recovery.

See docs/transports/socketio.md for the mapping from events to handlers and the limits.
"""

from framework.messaging._gateway import subscribe_message, websocket_gateway
from framework.transports.socketio.client import SocketIoClient
from framework.transports.socketio.socket import SioContext, SioSocket, SioState, WsResponse
from framework.transports.socketio.transport import SocketIoTransport

__all__ = [
    "SioContext",
    "SioSocket",
    "SioState",
    "SocketIoClient",
    "SocketIoTransport",
    "WsResponse",
    "subscribe_message",
    "websocket_gateway",
]

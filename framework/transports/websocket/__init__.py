"""WebSocket: handlers and gateways over JSON frames, rooms, subscriptions, a client.

See docs/transports/websocket.md for the frame format, limits and close codes.
"""

from framework.messaging._gateway import subscribe_message, websocket_gateway
from framework.transports.websocket._handshake import ConnectionGuard, Handshake
from framework.transports.websocket._socket import SocketState, WsSocket
from framework.transports.websocket.client import WebSocketClient
from framework.transports.websocket.context import WsContext, WsResponse
from framework.transports.websocket.transport import WebSocketTransport

__all__ = [
    "ConnectionGuard",
    "Handshake",
    "SocketState",
    "WebSocketClient",
    "WebSocketTransport",
    "WsContext",
    "WsResponse",
    "WsSocket",
    "subscribe_message",
    "websocket_gateway",
]

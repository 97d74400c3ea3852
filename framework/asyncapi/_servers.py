"""AsyncAPI Server Objects for an app's transports, and which server serves a handler.

Each transport is one server named after it (``kafka``, ``ws``, ``sse``, ``memory``).
A WebSocket gateway with its own path is a server of its own (``ws-admin`` for
``/admin``), since its handlers are reachable on that path only. A transport this module
does not know is described by its ``asyncapi_server(http_host=, secure=)`` method when it
has one (an AsyncAPI Server Object: ``host``, ``protocol``, ...), else by its name (the
protocol) and the HTTP host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from framework.exceptions import ConfigurationError
from framework.messaging._gateway import gateway_meta
from framework.messaging.router import MessageHandler
from framework.transports.base import Transport
from framework.transports.kafka.server import KafkaTransport
from framework.transports.memory import MemoryTransport
from framework.transports.sse import SseTransport
from framework.transports.websocket.transport import WebSocketTransport

KAFKA_BINDING_VERSION = "0.5.0"
HTTP_BINDING_VERSION = "0.3.0"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_key(text: str) -> str:
    """A component key AsyncAPI accepts (``^[\\w\\d.\\-_]+$``), readable in a URL fragment."""
    return _UNSAFE.sub("-", text).strip("-") or "x"


class Keys:
    """Unique keys: a second ``orders`` becomes ``orders-2``."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def new(self, wanted: str) -> str:
        key, n = safe_key(wanted), 1
        while key in self._used:
            n += 1
            key = f"{safe_key(wanted)}-{n}"
        self._used.add(key)
        return key


@dataclass
class ServerSet:
    """The document's ``servers`` and, per transport, how to find a handler's server."""

    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # transport -> (default server key, {gateway path: server key}) for WebSocket.
    _by_transport: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)
    protocols: dict[str, str] = field(default_factory=dict)
    sse: set[str] = field(default_factory=set)  # keys of SseTransport servers

    def for_handler(self, handler: MessageHandler, transports: Sequence[Transport]) -> list[str]:
        """The keys of the servers on which ``handler`` is reachable."""
        keys: list[str] = []
        for transport in transports:
            entry = self._by_transport.get(id(transport))
            if entry is None or not handler.serves(transport.name):
                continue
            default, by_path = entry
            key = default
            if isinstance(transport, WebSocketTransport):
                meta = gateway_meta(handler.controller)
                if meta is not None and meta.path and meta.path != transport.path:
                    key = by_path[meta.path]
            keys.append(key)
        return keys


def _ws(
    t: WebSocketTransport, http_host: str, secure: bool, gateway_paths: Sequence[str]
) -> list[tuple[str, dict[str, Any]]]:
    host = http_host
    if t.port is not None:
        host = f"{t.host_name}:{t.bound_port or t.port}"
    protocol = "wss" if secure else "ws"
    text = (
        'WebSocket, JSON text frames `{"event": <pattern>, "data": <payload>}`; an '
        '`"id"` makes a request whose reply frame carries it. Streamed replies are '
        '`"more": true` frames, then `"done": true`; errors are `"exception"` frames. '
        "The transport answers `subscribe`, `unsubscribe`, `cancel` (and `auth` when "
        "configured) itself."
    )
    out = [(t.name, {"host": host, "pathname": t.path, "protocol": protocol, "description": text})]
    for path in gateway_paths:
        gateway = {
            "host": host,
            "pathname": path,
            "protocol": protocol,
            "description": f"The WebSocket gateway on `{path}`; frames as on `{t.path}`.",
        }
        out.append((f"{t.name}-{path.strip('/')}", gateway))
    return out


def _sse(t: SseTransport, http_host: str, secure: bool) -> dict[str, Any]:
    return {
        "host": http_host,
        "pathname": t.path,
        "protocol": "https" if secure else "http",
        "description": (
            f"Server-Sent Events. `POST {t.path}/<pattern>` sends a message: the JSON body "
            "is the payload and the response is the reply (`text/event-stream` for a "
            f"stream, 202 for events). `GET {t.path}?subscribe=<patterns>` streams the "
            "events the app publishes."
        ),
    }


# AsyncAPI 3.0 security scheme types of the SASL mechanisms (OAUTHBEARER's "oauth2"
# needs flows the transport does not know: left out).
_SASL_SCHEMES = {
    "PLAIN": "plain",
    "SCRAM-SHA-256": "scramSha256",
    "SCRAM-SHA-512": "scramSha512",
    "GSSAPI": "gssapi",
}


def _kafka(t: KafkaTransport) -> dict[str, Any]:
    servers = t.bootstrap_servers
    host = servers if isinstance(servers, str) else ",".join(servers)
    server: dict[str, Any] = {
        "host": host,
        "protocol": "kafka-secure" if t.security is not None and t.security.tls else "kafka",
        "description": (
            f"Apache Kafka, consumer group `{t.group_id}`. Topic = pattern; JSON values. "
            "Requests carry the `kafka_correlationId` and `kafka_replyTopic` headers "
            "(NestJS's wire format) and are answered on `<pattern>.reply`; failing event "
            f"handlers are retried, then dead-lettered to `<topic>{t.dlq_suffix}`."
        ),
    }
    security = t.security
    scheme = _SASL_SCHEMES.get(security.mechanism or "") if security is not None else None
    if security is not None and scheme is not None:
        server["security"] = [
            {"type": scheme, "description": f"SASL {security.mechanism} ({security.protocol})"}
        ]
    return server


def _memory() -> dict[str, Any]:
    return {
        "host": "in-process",
        "protocol": "memory",
        "description": (
            "The in-memory transport: handlers called from the same process through the "
            "injected `ClientProxy` (payloads still travel as JSON)."
        ),
    }


def _custom(t: Transport, http_host: str, secure: bool) -> dict[str, Any]:
    """A transport's own ``asyncapi_server(http_host=, secure=)``, else its name."""
    hook = getattr(t, "asyncapi_server", None)
    if not callable(hook):
        return {
            "host": http_host,
            "protocol": t.name,
            "description": f"{type(t).__module__}.{type(t).__qualname__}",
        }
    server = dict(hook(http_host=http_host, secure=secure))
    missing = [k for k in ("host", "protocol") if not isinstance(server.get(k), str)]
    if missing:
        raise ConfigurationError(
            f"{type(t).__qualname__}.asyncapi_server() must return a Server Object with "
            f"string {' and '.join(repr(k) for k in missing)}"
        )
    return server


def build_servers(
    transports: Sequence[Transport],
    handlers: Sequence[MessageHandler],
    *,
    http_host: str,
    secure: bool,
) -> ServerSet:
    """One server per transport (and per WebSocket gateway path)."""
    result = ServerSet()
    keys = Keys()
    for t in transports:
        entries: list[tuple[str, dict[str, Any]]]
        if isinstance(t, WebSocketTransport):
            paths = sorted(
                {
                    meta.path
                    for h in handlers
                    if h.serves(t.name)
                    and (meta := gateway_meta(h.controller)) is not None
                    and meta.path
                    and meta.path != t.path
                }
            )
            entries = _ws(t, http_host, secure, paths)
        elif isinstance(t, SseTransport):
            entries = [(t.name, _sse(t, http_host, secure))]
        elif isinstance(t, KafkaTransport):
            entries = [(t.name, _kafka(t))]
        elif isinstance(t, MemoryTransport):
            entries = [(t.name, _memory())]
        else:
            entries = [(t.name, _custom(t, http_host, secure))]
        made = [(keys.new(name), server) for name, server in entries]
        if isinstance(t, SseTransport):
            result.sse.add(made[0][0])
        for key, server in made:
            result.servers[key] = server
            result.protocols[key] = server["protocol"]
        default = made[0][0]
        by_path = {server["pathname"]: key for key, server in made[1:]}
        result._by_transport[id(t)] = (default, by_path)
    return result

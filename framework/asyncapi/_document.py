"""The AsyncAPI 3.0.0 document of an app's ``@message_pattern``/``@event_pattern`` handlers.

Layout (see docs/asyncapi.md):

- ``servers``: one per transport (``kafka``, ``ws``, ``sse``, ``memory``).
- ``channels``: one per pattern (address = the pattern, wildcards included) and the set
  of servers its handlers serve on; handlers of one pattern limited to different
  transports get one channel each. Request/reply handlers add a reply channel whose
  address is ``null`` (where replies go depends on the transport).
- ``operations``: one ``receive`` operation per handler, keyed by the handler's name;
  request/reply handlers have a ``reply``.
- ``components.schemas``: the pydantic models, shared by every message.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from framework.application import AppDescription, Application
from framework.asyncapi._schemas import Mode, SchemaSet, reply_type, type_title
from framework.asyncapi._servers import (
    HTTP_BINDING_VERSION,
    KAFKA_BINDING_VERSION,
    Keys,
    ServerSet,
    build_servers,
)
from framework.exceptions import ConfigurationError
from framework.messaging._patterns import is_wildcard
from framework.messaging.router import MessageHandler
from framework.transports.base import Transport
from framework.transports.kafka.server import KafkaTransport
from framework.transports.websocket.context import WsResponse

ASYNCAPI_VERSION = "3.0.0"

_WILDCARD_NOTE = (
    "A wildcard pattern: `*` matches one dot-separated segment, `#` (last) one or more."
)
_REPLY_WHERE = {
    "kafka": "on Kafka, the topic the request's `kafka_replyTopic` header names "
    "(`{pattern}.reply` for NestJS's and this framework's clients)",
    "ws": "on WebSocket, the same connection, as a frame carrying the request's `id`",
    "http": "on SSE, the response to the `POST`",
    "memory": "in memory, what the caller's `send`/`stream` returns",
}
_REPLY_WHERE["wss"] = _REPLY_WHERE["ws"]
_REPLY_WHERE["https"] = _REPLY_WHERE["http"]
_WS_RESPONSE_NOTE = (
    "Replies with a `WsResponse`: a WebSocket frame under the event name the handler "
    "chooses, carrying any JSON value."
)
_STREAM_NOTE = (
    "Replies with a stream: one reply message per item (Kafka: the last one carries "
    "`kafka_nest-is-disposed`; WebSocket: `more` frames, then `done`; SSE: a "
    "`text/event-stream` response)."
)


def _doc_parts(handler: MessageHandler) -> tuple[str | None, str | None]:
    doc = inspect.getdoc(handler.func)
    if not doc:
        return None, None
    summary, _, rest = doc.partition("\n")
    return summary.strip() or None, rest.strip() or None


def _ref(*parts: str) -> dict[str, str]:
    # JSON Pointer escaping; keys are already limited to [A-Za-z0-9_.-].
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)}


def _message(tp: Any, mode: Mode, schemas: SchemaSet, *, has_payload: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"title": type_title(tp) if has_payload else "no payload"}
    if not has_payload:
        message["description"] = "The handler takes no payload; whatever is sent is ignored."
        return message
    if tp is bytes:
        message["contentType"] = "application/octet-stream"
    message["payload"] = schemas.schema(tp, mode)
    if not schemas.is_supported(tp, mode):
        message["description"] = (
            f"`{type_title(tp)}` has no JSON Schema; the payload is any JSON value."
        )
    return message


def _message_type(handler: MessageHandler) -> Any:
    """What one message validates as: a batch handler's ``list[T]`` and an inbound
    stream's ``AsyncIterator[T]`` take ``T``s."""
    if handler.signature.stream_input is not None:
        return handler.signature.item_type
    tp = handler.signature.payload_type
    return typing.get_args(tp)[0] if handler.batch is not None else tp


def _reply_item(return_type: Any, is_stream: bool) -> Any:
    item = reply_type(return_type, is_stream)
    # The WsResponse object itself never travels: its ``data`` does, under its ``event``.
    return Any if item is WsResponse else item


def _reply_note(pattern: str, servers: list[str], server_set: ServerSet) -> str:
    where = dict.fromkeys(
        _REPLY_WHERE.get(server_set.protocols[s], f"on {s}, as that transport replies")
        for s in servers
    )
    places = "; ".join(w.format(pattern=pattern) for w in where)
    return f"Replies to `{pattern}`; the address depends on the transport: {places}."


def _bindings(servers: list[str], server_set: ServerSet, groups: set[str]) -> dict[str, Any]:
    bindings: dict[str, Any] = {}
    # Only KafkaTransports give groups; several groups have no single binding.
    if len(groups) == 1:
        (group,) = groups
        bindings["kafka"] = {
            "groupId": {"type": "string", "enum": [group]},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    if server_set.sse.intersection(servers):
        # The SSE transport takes messages as POST <path>/<pattern>.
        bindings["http"] = {"method": "POST", "bindingVersion": HTTP_BINDING_VERSION}
    return bindings


def asyncapi_document(
    app_description: AppDescription,
    transports: Sequence[Transport],
    *,
    title: str = "App",
    version: str = "1.0.0",
    description: str | None = None,
    http_host: str = "localhost:8000",
    secure: bool = False,
    only_transports: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document (JSON-ready data) of described handlers.

    Args:
        app_description: what ``Application.describe()`` returned.
        transports: the app's transport objects (``app.transports``), for server
            addresses; a transport named in the description but not given here is left out.
        title: ``info.title``.
        version: ``info.version``: the version of *your* API.
        description: ``info.description`` (CommonMark).
        http_host: ``host[:port]`` where the app's HTTP server is reached; the WebSocket
            and SSE servers mounted on it use it.
        secure: the HTTP server is behind TLS (``wss``/``https`` protocols).
        only_transports: document only these transport names (``None``: all of them).

    Raises:
        ConfigurationError: ``only_transports`` names a transport the app does not have.
    """
    chosen = list(transports)
    if only_transports is not None:
        wanted = set(only_transports)
        unknown = wanted - {t.name for t in chosen}
        if unknown:
            raise ConfigurationError(
                f"The app has no transport named {', '.join(sorted(unknown))}; it has "
                f"{', '.join(t.name for t in chosen)}"
            )
        chosen = [t for t in chosen if t.name in wanted]
    handlers = sorted(app_description.handlers, key=lambda h: (h.pattern, h.kind, h.name))
    server_set = build_servers(chosen, handlers, http_host=http_host, secure=secure)

    served: list[tuple[MessageHandler, list[str]]] = []
    schemas = SchemaSet()
    for h in handlers:
        servers = server_set.for_handler(h, chosen)
        if not servers:
            continue  # limited to transports the app does not have: never reachable
        served.append((h, servers))
        sig = h.signature
        if "payload" in sig.order:
            schemas.want(_message_type(h), "validation")
        if h.kind == "message":
            schemas.want(_reply_item(sig.return_type, sig.is_stream), "serialization")
    schemas.build()

    channel_keys, op_keys = Keys(), Keys()
    channels: dict[str, dict[str, Any]] = {}
    channel_of: dict[tuple[str, tuple[str, ...]], str] = {}
    operations: dict[str, dict[str, Any]] = {}
    for h, servers in served:
        group = (h.pattern, tuple(servers))
        cid = channel_of.get(group)
        if cid is None:
            split = any(p == h.pattern and s != group[1] for p, s in channel_of)
            suffix = "-" + "-".join(servers) if split else ""
            readable = h.pattern.replace("*", "star").replace("#", "hash")
            cid = channel_of[group] = channel_keys.new(readable + suffix)
            channels[cid] = {
                "address": h.pattern,
                "title": h.pattern,
                "servers": [_ref("servers", s) for s in servers],
                "messages": {},
            }
            if is_wildcard(h.pattern):
                channels[cid]["description"] = _WILDCARD_NOTE
        oid = op_keys.new(h.name)
        sig = h.signature
        channels[cid]["messages"][oid] = _message(
            _message_type(h), "validation", schemas, has_payload="payload" in sig.order
        )
        op: dict[str, Any] = {
            "action": "receive",
            "channel": _ref("channels", cid),
            "messages": [_ref("channels", cid, "messages", oid)],
            "title": h.name,
        }
        summary, details = _doc_parts(h)
        if summary:
            op["summary"] = summary
        notes = [details] if details else []
        if h.kind == "message":
            item = _reply_item(sig.return_type, sig.is_stream)
            rid = channel_keys.new(f"{cid}.reply")
            channels[rid] = {
                "address": None,
                "title": f"{h.pattern} reply",
                "description": _reply_note(h.pattern, servers, server_set),
                "servers": [_ref("servers", s) for s in servers],
                "messages": {oid: _message(item, "serialization", schemas, has_payload=True)},
            }
            op["reply"] = {
                "channel": _ref("channels", rid),
                "messages": [_ref("channels", rid, "messages", oid)],
            }
            if reply_type(sig.return_type, sig.is_stream) is WsResponse:
                notes.append(_WS_RESPONSE_NOTE)
            if sig.is_stream:
                notes.append(_STREAM_NOTE)
                op["x-stream"] = True
        else:
            notes.append("An event: every matching event handler runs; nothing is replied.")
        if notes:
            op["description"] = "\n\n".join(notes)
        op["tags"] = [{"name": h.controller.__name__}]
        groups = {t.group_id for t in chosen if isinstance(t, KafkaTransport) and h.serves(t.name)}
        bindings = _bindings(servers, server_set, groups)
        if bindings:
            op["bindings"] = bindings
        operations[oid] = op

    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    doc: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "defaultContentType": "application/json",
        "servers": server_set.servers,
        "channels": channels,
        "operations": operations,
    }
    if schemas.components:
        doc["components"] = {"schemas": schemas.components}
    return doc


def _app_title(app: Application) -> str:
    root = getattr(app.root_module, "module", app.root_module)  # a DynamicModule's class
    return str(getattr(root, "__name__", "App"))


async def build_asyncapi(
    app: Application,
    *,
    title: str | None = None,
    version: str = "1.0.0",
    description: str | None = None,
    http_host: str = "localhost:8000",
    secure: bool = False,
    only_transports: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``app``'s message and event handlers.

    A running app is described from its compiled handlers; one that is not running is
    built with ``Application.describe()`` (providers created, handlers compiled, no
    lifecycle hook, no connection, no transport started).

    Args:
        app: the application.
        title: ``info.title``; the root module's class name if ``None``.
        version: ``info.version``.
        description: ``info.description``.
        http_host: ``host[:port]`` of the app's HTTP server (WebSocket and SSE servers).
        secure: ``wss``/``https`` instead of ``ws``/``http``.
        only_transports: document only these transport names (``None``: all).

    Raises:
        ConfigurationError: the app is wired wrongly, or ``only_transports`` names a
            transport the app does not have.
    """
    try:
        # Running: the compiled handlers as they are. describe() would also rebuild the
        # transports' routes, which a running transport does not expect.
        handlers = app.router.handlers
        desc = AppDescription([t.name for t in app.transports], [], [], list(handlers))
    except ConfigurationError:
        desc = await app.describe()
    return asyncapi_document(
        desc,
        app.transports,
        title=title or _app_title(app),
        version=version,
        description=description,
        http_host=http_host,
        secure=secure,
        only_transports=only_transports,
    )

"""The AsyncAPI document of real apps validates against the official 3.0.0 schema and
says what each handler accepts and replies, on which transports."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from example_app.main import build_app
from framework import create_app
from framework.asyncapi import asyncapi_document, build_asyncapi
from framework.exceptions import ConfigurationError
from framework.transports.base import Transport
from tests.asyncapi import app as shop
from tests.asyncapi.schema import schema_errors, unresolved_refs


def assert_valid(doc: dict[str, Any]) -> None:
    assert schema_errors(doc) == []
    assert unresolved_refs(doc) == []
    for key, op in doc["operations"].items():
        # An operation's messages are its channel's (a rule the JSON Schema cannot state).
        channel = op["channel"]["$ref"]
        for ref in op["messages"]:
            assert ref["$ref"].startswith(channel + "/messages/"), key
        if "reply" in op:
            reply = op["reply"]["channel"]["$ref"]
            assert all(m["$ref"].startswith(reply + "/messages/") for m in op["reply"]["messages"])


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def payload_validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A validator for one payload schema, its component references resolving in ``doc``."""
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def channels_for(doc: dict[str, Any], address: str) -> dict[str, dict[str, Any]]:
    return {k: c for k, c in doc["channels"].items() if c["address"] == address}


def servers_of(channel: dict[str, Any]) -> list[str]:
    return [s["$ref"].removeprefix("#/servers/") for s in channel["servers"]]


async def test_the_example_app_document_is_valid_asyncapi() -> None:
    doc = await build_asyncapi(build_app())
    assert_valid(doc)
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"] == {"title": "AppModule", "version": "1.0.0"}
    assert {k: s["protocol"] for k, s in doc["servers"].items()} == {
        "memory": "memory",
        "ws": "ws",
        "socketio": "socketio",
        "sse": "http",
    }
    get = doc["operations"]["OrdersController.get_by_message"]
    assert get["action"] == "receive"
    request = resolve(doc, get["messages"][0]["$ref"])
    assert request["payload"] == {"type": "integer"}
    reply = resolve(doc, get["reply"]["messages"][0]["$ref"])
    assert reply["payload"] == {"$ref": "#/components/schemas/Order"}
    assert set(doc["components"]["schemas"]["Order"]["required"]) == {"id", "customer", "total"}


async def test_the_example_app_with_kafka_documents_the_kafka_server() -> None:
    # Built, never started: no broker is needed.
    doc = await build_asyncapi(build_app("127.0.0.1:9092"))
    assert_valid(doc)
    assert doc["servers"]["kafka"]["host"] == "127.0.0.1:9092"
    op = doc["operations"]["NotificationsController.on_order_created"]
    assert op["bindings"]["kafka"]["groupId"] == {"type": "string", "enum": ["example-orders"]}
    assert "kafka" in servers_of(resolve(doc, op["channel"]["$ref"]))


async def test_a_secured_kafka_server_documents_tls_and_its_sasl_mechanism(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "never-printed")
    doc = await build_asyncapi(build_app("127.0.0.1:9093"))
    assert_valid(doc)
    server = doc["servers"]["kafka"]
    assert server["protocol"] == "kafka-secure"
    assert server["security"] == [
        {"type": "scramSha512", "description": "SASL SCRAM-SHA-512 (SASL_SSL)"}
    ]
    assert "never-printed" not in str(doc)


@pytest.fixture
async def doc() -> dict[str, Any]:
    return await build_asyncapi(shop.app)


async def test_streams_wildcards_and_limited_handlers_validate(doc: dict[str, Any]) -> None:
    assert_valid(doc)
    servers = doc["servers"]
    assert {k: (s["protocol"], s["host"], s.get("pathname")) for k, s in servers.items()} == {
        "memory": ("memory", "in-process", None),
        "kafka": ("kafka", "127.0.0.1:9092,127.0.0.1:9093", None),
        "ws": ("ws", "localhost:8000", "/ws"),
        "ws-chat": ("ws", "localhost:8000", "/chat"),
        "sse": ("http", "localhost:8000", "/events"),
    }


async def test_a_stream_replies_with_its_item_type(doc: dict[str, Any]) -> None:
    watch = doc["operations"]["OrdersController.watch"]
    assert watch["x-stream"] is True
    assert "stream" in watch["description"]
    item = resolve(doc, watch["reply"]["messages"][0]["$ref"])
    assert item["payload"] == {"$ref": "#/components/schemas/Order"}
    reply_channel = resolve(doc, watch["reply"]["channel"]["$ref"])
    assert reply_channel["address"] is None  # where replies go depends on the transport
    assert "`kafka_replyTopic`" in reply_channel["description"]
    # An async generator without a return annotation: the items are any JSON value.
    ticks = doc["operations"]["OrdersController.ticks"]
    assert resolve(doc, ticks["reply"]["messages"][0]["$ref"])["payload"] == {}


async def test_wildcard_channels_are_addressed_by_their_pattern(doc: dict[str, Any]) -> None:
    (audit,) = channels_for(doc, "orders.*").values()
    assert servers_of(audit) == ["memory", "kafka", "ws", "sse"]
    assert "wildcard" in audit["description"]
    (stock,) = channels_for(doc, "stock.#").values()
    assert servers_of(stock) == ["kafka"]
    (message,) = stock["messages"].values()
    assert message["contentType"] == "application/octet-stream"  # a `bytes` payload


async def test_handlers_limited_to_transports_get_their_own_servers(doc: dict[str, Any]) -> None:
    created = channels_for(doc, "orders.created")
    assert sorted(servers_of(c) for c in created.values()) == [["kafka"], ["ws"]]
    for key, channel in created.items():
        (message,) = channel["messages"].values()
        expected = (
            {"$ref": "#/components/schemas/Order"}
            if "kafka" in servers_of(channel)
            else {"type": "integer"}
        )
        assert message["payload"] == expected, key
    (ping,) = channels_for(doc, "admin.ping").values()
    assert servers_of(ping) == ["memory", "sse"]
    (no_payload,) = ping["messages"].values()
    assert "payload" not in no_payload
    # A gateway on its own path is reachable there only.
    (chat,) = channels_for(doc, "chat.say").values()
    assert servers_of(chat) == ["ws-chat"]
    # Limited to a transport the app does not have: nothing can call it.
    assert channels_for(doc, "nowhere.call") == {}
    assert "OrdersController.never" not in doc["operations"]


async def test_operations_carry_docstrings_tags_and_bindings(doc: dict[str, Any]) -> None:
    create = doc["operations"]["OrdersController.create"]
    assert create["summary"] == "Create an order."
    assert create["description"] == "Returns the stored order with its id."
    assert create["tags"] == [{"name": "OrdersController"}]
    assert create["bindings"]["kafka"]["groupId"]["enum"] == ["shop"]
    assert create["bindings"]["http"]["method"] == "POST"
    say = doc["operations"]["ChatGateway.say"]
    assert "bindings" not in say
    assert resolve(doc, say["reply"]["messages"][0]["$ref"])["payload"] == {}
    assert "WsResponse" in say["description"]
    audit = doc["operations"]["OrdersController.audit"]
    assert "reply" not in audit
    # A reply type without a JSON Schema: any JSON value, and the document says why.
    opaque = doc["operations"]["OrdersController.opaque"]
    reply = resolve(doc, opaque["reply"]["messages"][0]["$ref"])
    assert reply["payload"] == {}
    assert "`Opaque` has no JSON Schema" in reply["description"]


async def test_payload_schemas_accept_and_refuse_what_the_handler_would(
    doc: dict[str, Any],
) -> None:
    create = doc["operations"]["OrdersController.create"]
    schema = resolve(doc, create["messages"][0]["$ref"])["payload"]
    check = payload_validator(doc, schema)
    good = {"customer": "ann", "items": ["tea"], "ship_to": {"city": "Oslo", "zip_code": "01234"}}
    assert check.is_valid(good)
    assert shop.NewOrder.model_validate(good)
    bad = {**good, "ship_to": {"city": "Oslo", "zip_code": "12"}}
    assert not check.is_valid(bad)
    assert not check.is_valid({**good, "customer": ""})


async def test_only_some_transports(doc: dict[str, Any]) -> None:
    only = await build_asyncapi(shop.app, only_transports=["kafka"])
    assert_valid(only)
    assert list(only["servers"]) == ["kafka"]
    assert all(servers_of(c) == ["kafka"] for c in only["channels"].values())
    assert "ChatGateway.say" not in only["operations"]
    with pytest.raises(ConfigurationError, match="no transport named mqtt"):
        await build_asyncapi(shop.app, only_transports=["mqtt"])


async def test_title_version_host_and_tls_are_options() -> None:
    doc = await build_asyncapi(
        shop.app,
        title="Shop",
        version="2.1.0",
        description="Orders and chat.",
        http_host="shop.example:443",
        secure=True,
    )
    assert_valid(doc)
    assert doc["info"] == {"title": "Shop", "version": "2.1.0", "description": "Orders and chat."}
    assert doc["servers"]["ws"]["host"] == "shop.example:443"
    assert doc["servers"]["ws"]["protocol"] == "wss"
    assert doc["servers"]["sse"]["protocol"] == "https"


async def test_a_running_app_is_described_from_its_compiled_handlers() -> None:
    app = build_app()
    before = await build_asyncapi(app)
    async with app:
        during = await build_asyncapi(app)
    assert during == before


async def test_an_app_without_handlers_is_still_a_valid_document() -> None:
    from framework import module

    @module()
    class Empty:
        pass

    app = create_app(Empty)
    doc = asyncapi_document(await app.describe(), app.transports, title="Empty")
    assert_valid(doc)
    assert doc["channels"] == {} and doc["operations"] == {}
    assert "components" not in doc


class QueueTransport(Transport):
    """A user's transport that describes its own server."""

    name = "queue"

    def __init__(self, server: dict[str, Any] | None) -> None:
        self.server = server

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def asyncapi_server(self, *, http_host: str, secure: bool) -> dict[str, Any]:
        assert self.server is not None
        return self.server


class NamedOnlyTransport(Transport):
    name = "carrier-pigeon"

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def test_custom_transports_describe_their_servers() -> None:
    described = QueueTransport({"host": "mq.internal:5672", "protocol": "amqp", "title": "Q"})
    app = create_app(shop.ShopModule, transports=[described, NamedOnlyTransport()])
    doc = await build_asyncapi(app, http_host="api.example:80")
    assert_valid(doc)
    assert doc["servers"]["queue"] == {"host": "mq.internal:5672", "protocol": "amqp", "title": "Q"}
    named = doc["servers"]["carrier-pigeon"]
    assert (named["host"], named["protocol"]) == ("api.example:80", "carrier-pigeon")
    (audit,) = channels_for(doc, "orders.*").values()
    assert servers_of(audit) == ["memory", "queue", "carrier-pigeon"]

    broken = create_app(shop.ShopModule, transports=[QueueTransport({"host": "mq"})])
    with pytest.raises(ConfigurationError, match=r"asyncapi_server\(\) must return .*'protocol'"):
        await build_asyncapi(broken)

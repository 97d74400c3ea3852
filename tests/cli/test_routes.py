"""``framework routes`` on the example app, as a table and as JSON."""

from __future__ import annotations

import json

from tests.cli.helpers import cli


def test_routes_table_lists_http_routes_and_patterns() -> None:
    result = cli("routes", "example_app.main:app")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Transports: memory, ws, socketio, sse" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "http POST /orders OrdersController.create" in lines
    assert "http GET /orders/{order_id} OrdersController.get_one" in lines
    assert "http GET /notifications NotificationsController.list" in lines
    assert "message orders.get memory,ws,socketio,sse OrdersController.get_by_message" in lines
    assert (
        "event orders.created memory,ws,socketio,sse NotificationsController.on_order_created"
        in lines
    )
    assert "ws websocket /ws" in lines
    assert "sse POST /events/{pattern}" in lines
    assert "socketio websocket /socket.io/" in lines


def test_routes_json_is_machine_readable() -> None:
    result = cli("routes", "example_app.main:app", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["transports"] == ["memory", "ws", "socketio", "sse"]
    assert {
        "kind": "http",
        "method": "GET",
        "path": "/orders",
        "handler": "OrdersController.list",
    } in data["http"]
    patterns = {(p["kind"], p["pattern"]): p for p in data["patterns"]}
    get = patterns[("message", "orders.get")]
    assert get["transports"] == ["memory", "ws", "socketio", "sse"]
    assert get["declared_transports"] is None  # every transport of the app
    assert get["handler"] == "OrdersController.get_by_message"
    assert ("event", "orders.created") in patterns
    assert {"transport": "ws", "kind": "websocket", "methods": None, "path": "/ws"} in (
        data["endpoints"]
    )


def test_routes_accepts_a_module_class() -> None:
    result = cli("routes", "example_app.app_module:AppModule", "--json")
    assert result.returncode == 0, result.stderr
    assert any(r["path"] == "/orders" for r in json.loads(result.stdout)["http"])


def test_routes_lists_transport_endpoints_and_transport_limits(tmp_path) -> None:
    (tmp_path / "wsapp.py").write_text(
        """
from typing import Any

from starlette.routing import WebSocketRoute

from framework import Transport, controller, create_app, module, subscribe_message


class FakeSocketTransport(Transport):
    name = "ws"

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def routes(self):
        async def endpoint(websocket: Any) -> None: ...
        return [WebSocketRoute("/socket", endpoint)]


@controller()
class Chat:
    @subscribe_message("chat.say")
    async def say(self, text: str) -> str:
        return text


@module(controllers=[Chat])
class AppModule:
    pass


app = create_app(AppModule, transports=[FakeSocketTransport()])
app_memory_only = create_app(AppModule)
"""
    )
    data = json.loads(cli("routes", "wsapp:app", "--json", cwd=tmp_path).stdout)
    assert data["transports"] == ["memory", "ws"]
    assert data["endpoints"] == [
        {"transport": "ws", "kind": "websocket", "methods": None, "path": "/socket"}
    ]
    (say,) = data["patterns"]
    assert say["transports"] == ["ws"] and say["declared_transports"] == ["socketio", "ws"]

    table = cli("routes", "wsapp:app_memory_only", cwd=tmp_path).stdout
    # Limited to a transport the app does not have: shown, and flagged.
    assert "- (only socketio,ws)" in table

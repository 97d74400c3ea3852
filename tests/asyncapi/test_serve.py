"""``mount_asyncapi``: the running app serves its document as HTML, JSON and YAML."""

from __future__ import annotations

import re

import httpx
import pytest
import yaml

from framework import ConfigurationError, controller, create_app, message_pattern, module
from framework.asyncapi import mount_asyncapi
from framework.transports.sse import SseTransport
from framework.transports.websocket import WebSocketTransport
from tests.asyncapi.schema import schema_errors


@controller()
class EchoController:
    @message_pattern("echo.say")
    async def say(self, text: str) -> str:
        """Echo <b>bold</b> & "quoted" text back."""
        return text


@module(controllers=[EchoController])
class EchoModule:
    pass


async def test_html_json_and_yaml_are_served_for_the_requests_host() -> None:
    app = create_app(EchoModule, transports=[WebSocketTransport(), SseTransport()])
    mount_asyncapi(app, "/docs/asyncapi", title="Echo")
    async with app:
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="https://echo.example") as http:
            as_json = await http.get("/docs/asyncapi.json")
            as_yaml = await http.get("/docs/asyncapi.yaml")
            page = await http.get("/docs/asyncapi")
    assert as_json.status_code == 200
    doc = as_json.json()
    assert schema_errors(doc) == []
    assert doc["info"]["title"] == "Echo"
    assert doc["servers"]["ws"]["host"] == "echo.example"
    assert doc["servers"]["ws"]["protocol"] == "wss"  # the request came over https
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == doc

    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<code>echo.say</code>" in html
    assert "EchoController.say" in html
    # Docstrings are text, never markup; the page loads nothing from anywhere.
    assert "Echo &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; text back." in html
    assert "<b>" not in html
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


async def test_the_page_links_payloads_to_their_schemas() -> None:
    from tests.asyncapi.app import ShopModule

    app = create_app(ShopModule, transports=[WebSocketTransport()])
    mount_asyncapi(app)
    async with app:
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            page = (await http.get("/asyncapi")).text
    assert 'id="schema-Order"' in page
    assert '<a href="#schema-Order">' in page
    assert "<code>orders.*</code>" in page


def test_paths_must_be_absolute() -> None:
    app = create_app(EchoModule)
    with pytest.raises(ConfigurationError, match="must start with '/'"):
        mount_asyncapi(app, "asyncapi")

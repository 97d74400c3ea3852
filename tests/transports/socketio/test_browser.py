"""Headless Chromium loads socket.io-client's browser bundle from the transport (socket.io's
``serveClient``: ``/socket.io/socket.io.js``, never a CDN), connects on long-polling,
upgrades, and round-trips an ack, an error ack and a published event."""

from __future__ import annotations

import httpx
import pytest
from starlette.responses import HTMLResponse

from framework import controller, get, module
from tests.transports.socketio.app import TIMEOUT, SioModule, served
from tests.transports.socketio.test_node_client import NODE_DIR, require_node_package
from tests.transports.websocket.test_browser import ARGS, CHROMIUM, _require_browser

pytestmark = pytest.mark.browser

NPM_BUNDLE = NODE_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"

PAGE = """<!doctype html>
<html><body><script src="/socket.io/socket.io.js"></script><script>
window.log = [];
const socket = io();
// The transport it opened on, read before the upgrade can finish (a fast one races
// the "connect" event).
socket.io.once("open", () => { window.first = socket.io.engine.transport.name; });
socket.on("orders.created", (order) => { window.pushed = order; });
socket.on("connect", async () => {
  window.echo = await socket.emitWithAck("echo", {text: "from chromium"});
  window.error = await socket.emitWithAck("echo", {nope: true});
  window.subscribed = await socket.emitWithAck("subscribe", "orders.*");
});
socket.io.engine.on("upgrade", (t) => { window.upgraded = t.name; });
</script></body></html>"""


@controller()
class PageController:
    @get("/")
    async def page(self) -> HTMLResponse:
        return HTMLResponse(PAGE)


@module(imports=[SioModule], controllers=[PageController])
class BrowserModule:
    pass


async def test_browser_socket_io_client_polls_upgrades_and_round_trips() -> None:
    require_node_package("socket.io-client")
    async_playwright = _require_browser()
    async with served(BrowserModule) as (app, _, url), async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url + "/")
            wait_ms = TIMEOUT * 1000
            await page.wait_for_function("window.subscribed !== undefined", timeout=wait_ms)
            assert await page.evaluate("window.first") == "polling"
            assert await page.evaluate("window.echo") == {"text": "from chromium"}
            error = await page.evaluate("window.error")
            assert error["status"] == "error" and error["message"] == "Validation failed"
            assert await page.evaluate("window.subscribed") == ["orders.*"]
            await page.wait_for_function("window.upgraded === 'websocket'", timeout=wait_ms)
            await app.publish("orders.created", {"id": 11})
            await page.wait_for_function("window.pushed !== undefined", timeout=wait_ms)
            assert await page.evaluate("window.pushed") == {"id": 11}
        finally:
            await browser.close()


async def test_the_served_bundle_is_the_npm_packages() -> None:
    """The bundle shipped in the wheel is the one the tests' socket.io-client installs
    (bump both together)."""
    require_node_package("socket.io-client")
    async with served() as (_, _t, url), httpx.AsyncClient() as http:
        for name in ("socket.io.js", "socket.io.min.js"):
            response = await http.get(f"{url}/socket.io/{name}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/javascript")
            assert response.content == NPM_BUNDLE.read_bytes()

"""A real browser (headless Chromium) opens a native WebSocket to the app's HTTP port."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import HTMLResponse

from framework import controller, get, module
from tests.transports.websocket.app import TIMEOUT, ChatModule, served

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

PAGE = """<!doctype html>
<html><body><pre id="log"></pre><script>
window.state = "connecting";
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onmessage = (m) => {
  const frame = JSON.parse(m.data);
  if (frame.id === 1) { window.reply = frame; ws.send(JSON.stringify(
      {event: "subscribe", data: ["orders.*"], id: 2})); }
  else if (frame.id === 2) { window.state = "subscribed"; }
  else if (frame.event === "orders.created") { window.pushed = frame; window.state = "done"; }
  document.getElementById("log").textContent += m.data + "\\n";
};
ws.onopen = () => ws.send(JSON.stringify(
    {event: "order.check", data: {id: 7, total: 9.5}, id: 1}));
</script></body></html>"""


@controller()
class PageController:
    @get("/")
    async def page(self) -> HTMLResponse:
        return HTMLResponse(PAGE)


@module(imports=[ChatModule], controllers=[PageController])
class BrowserModule:
    pass


def _require_browser() -> Any:
    missing = None
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing = "playwright is not installed"
    if missing is None and not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"{missing} (REQUIRE_BROWSER=1 makes this a failure)", pytrace=False)
        pytest.skip(missing)
    return async_playwright


async def test_browser_websocket_request_and_server_push() -> None:
    async_playwright = _require_browser()
    async with served(BrowserModule) as (app, _, url), async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url.replace("ws://", "http://") + "/")
            wait_ms = TIMEOUT * 1000
            await page.wait_for_function("window.state === 'subscribed'", timeout=wait_ms)
            assert await page.evaluate("window.reply") == {
                "event": "order.check",
                "data": {"id": 7, "total": 9.5},
                "id": 1,
            }
            await app.publish("orders.created", {"id": 7})
            await page.wait_for_function("window.state === 'done'", timeout=wait_ms)
            assert await page.evaluate("window.pushed") == {
                "event": "orders.created",
                "data": {"id": 7},
            }
        finally:
            await browser.close()

"""A real browser's ``EventSource``: headless Chromium reconnects on its own after the
server drops it, sends ``Last-Event-ID``, and gets what it missed exactly once."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from starlette.responses import HTMLResponse

from framework import controller, create_app, get, module
from framework.transports.sse import SseTransport
from tests.timing import TIME_FACTOR
from tests.transports.sse.conftest import LastEventIdLog, seq, serving, wait_until

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>feed</title>
<ul id="feed"></ul>
<script>
  window.received = [];
  window.opens = 0;
  const source = new EventSource("/events?subscribe=feed.*");
  source.onopen = () => { window.opens += 1; };
  for (const type of ["feed.item", "reset"]) {
    source.addEventListener(type, (event) => {
      window.received.push({type: event.type, id: event.lastEventId, data: event.data});
      const li = document.createElement("li");
      li.textContent = event.data;
      document.getElementById("feed").append(li);
    });
  }
</script>
"""


def _require_chromium() -> None:
    if shutil.which("chromium") is None and not os.path.exists(CHROMIUM):
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@controller()
class PageController:
    @get("/")
    async def page(self) -> HTMLResponse:
        return HTMLResponse(PAGE)


@module(controllers=[PageController])
class PageModule:
    pass


async def test_browser_reconnects_and_resumes_without_loss_or_duplicates() -> None:
    _require_chromium()
    from playwright.async_api import async_playwright

    log = LastEventIdLog()
    transport = SseTransport("/events", retry_ms=100, guards=[log])
    app = create_app(PageModule, transports=[transport])
    timeout_ms = 10_000 * TIME_FACTOR
    async with serving(app) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url + "/")
            await page.wait_for_function("window.opens === 1", timeout=timeout_ms)
            for i in range(1, 4):
                await app.publish("feed.item", {"n": i})
            await page.wait_for_function("window.received.length === 3", timeout=timeout_ms)

            # The server drops the stream; events published meanwhile must not be lost.
            assert transport.close_streams() == 1
            await wait_until(lambda: transport.subscriber_count == 0)
            for i in range(4, 7):
                await app.publish("feed.item", {"n": i})
            await page.wait_for_function("window.opens === 2", timeout=timeout_ms)
            await app.publish("feed.item", {"n": 7})
            await page.wait_for_function("window.received.length >= 7", timeout=timeout_ms)
            received: list[dict[str, Any]] = await page.evaluate("window.received")
            shown = await page.locator("#feed li").all_inner_texts()
        finally:
            await browser.close()
    assert [seq(r["id"]) for r in received] == [str(i) for i in range(1, 8)]
    assert all(r["type"] == "feed.item" for r in received)
    assert shown == [f'{{"n":{i}}}' for i in range(1, 8)]
    assert [seq(i) for i in log.ids] == [None, "3"], "the browser resumed from the last id it saw"

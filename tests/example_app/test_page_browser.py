"""The example app's page in headless Chromium: an order created in one tab shows up live
over WebSocket, Socket.IO and SSE in another, and a WebSocket request gets its reply."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from example_app.main import build_app
from tests.timing import TIME_FACTOR

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 10_000 * TIME_FACTOR


def require_chromium() -> None:
    if shutil.which("chromium") is None and not os.path.exists(CHROMIUM):
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@asynccontextmanager
async def serve_example() -> AsyncIterator[str]:
    """The example app under real uvicorn (as `make run` serves it) on a free port."""
    app = build_app()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = app.server("127.0.0.1", port, log_level="warning")
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10 * TIME_FACTOR):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(10 * TIME_FACTOR):
            await task


async def test_orders_appear_live_in_every_open_page() -> None:
    require_chromium()
    from playwright.async_api import async_playwright

    async with serve_example() as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            watcher = await browser.new_page()
            author = await browser.new_page()
            for page in (watcher, author):
                await page.goto(url)
                await page.wait_for_function(
                    "document.getElementById('ws-status').textContent === 'live'"
                    " && document.getElementById('sio-status').textContent === 'live'"
                    " && document.getElementById('sse-status').textContent === 'live'",
                    timeout=TIMEOUT_MS,
                )
            await author.fill("#customer", "ada")
            await author.fill("#total", "12.5")
            await author.click("text=Create order")
            expected = "Order #1 from ada: 12.50"
            for selector in ("#ws-orders li", "#sio-orders li", "#sse-orders li"):
                await watcher.wait_for_selector(
                    f"{selector} >> text={expected}", timeout=TIMEOUT_MS
                )
            await watcher.fill("#lookup-id", "1")
            await watcher.click("#lookup")
            await watcher.wait_for_function(
                f"document.getElementById('lookup-result').textContent === '{expected}'",
                timeout=TIMEOUT_MS,
            )
            await watcher.fill("#lookup-id", "99")
            await watcher.click("#lookup")
            await watcher.wait_for_function(
                "document.getElementById('lookup-result').textContent"
                " === 'error: Order 99 not found'",
                timeout=TIMEOUT_MS,
            )
        finally:
            await browser.close()

"""An ``@sse`` route that returns an Observable, read by headless Chromium's
``EventSource``: the items arrive as events, and closing the ``EventSource`` disposes the
Observable's subscription on the server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import reactivex
from reactivex import operators as ops
from reactivex.abc import ObserverBase, SchedulerBase
from reactivex.disposable import Disposable
from starlette.responses import HTMLResponse

from framework import controller, create_app, get, injectable, module, sse
from tests.timing import TIME_FACTOR
from tests.transports.sse.conftest import serving
from tests.transports.sse.test_browser import ARGS, CHROMIUM, _require_chromium

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<meta charset="utf-8">
<script>
  window.received = [];
  window.source = new EventSource("/ticks");
  window.source.onmessage = (event) => { window.received.push(JSON.parse(event.data)); };
</script>
"""


@injectable()
class Disposals:
    def __init__(self) -> None:
        self.disposed = asyncio.Event()


@controller()
class TicksController:
    def __init__(self, disposals: Disposals) -> None:
        self.disposals = disposals

    @get("/")
    async def page(self) -> HTMLResponse:
        return HTMLResponse(PAGE)

    @sse("/ticks")
    async def ticks(self) -> reactivex.Observable[dict[str, int]]:
        disposed = self.disposals.disposed

        def subscribe(observer: ObserverBase[int], scheduler: SchedulerBase | None) -> Any:
            inner = reactivex.interval(0.02).subscribe(observer, scheduler=scheduler)
            return Disposable(lambda: (inner.dispose(), disposed.set()))

        return reactivex.create(subscribe).pipe(ops.map(lambda n: {"tick": n}))


@module(controllers=[TicksController], providers=[Disposals])
class TicksModule:
    pass


async def test_an_observable_streams_to_event_source_and_closing_disposes_it() -> None:
    _require_chromium()
    from playwright.async_api import async_playwright

    app = create_app(TicksModule)
    timeout_ms = 10_000 * TIME_FACTOR
    async with serving(app) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url + "/")
            await page.wait_for_function("window.received.length >= 3", timeout=timeout_ms)
            received: list[dict[str, int]] = await page.evaluate("window.received")
            assert received[:3] == [{"tick": 0}, {"tick": 1}, {"tick": 2}]
            assert not app.get(Disposals).disposed.is_set()
            await page.evaluate("window.source.close()")
            await asyncio.wait_for(app.get(Disposals).disposed.wait(), 10 * TIME_FACTOR)
        finally:
            await browser.close()

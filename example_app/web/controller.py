from __future__ import annotations

from pathlib import Path

from starlette.responses import HTMLResponse

from framework import controller, get

PAGE = (Path(__file__).parent / "index.html").read_text(encoding="utf-8")


@controller()
class WebController:
    """Serves the live orders page (plain HTML and JavaScript, no build step)."""

    @get("/")
    async def index(self) -> HTMLResponse:
        return HTMLResponse(PAGE)

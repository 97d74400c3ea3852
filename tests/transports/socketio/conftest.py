"""``serve``: a test taking it runs on both frame layers under the Engine.IO WebSocket,
picows (``app.server()``'s default) and ASGI (uvicorn's own WebSocket protocol, as under
``uvicorn module:app``); ``served`` alone runs on the default."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tests.transports.socketio.app import FRAME_LAYERS, served


@pytest.fixture(params=list(FRAME_LAYERS))
def serve(request: pytest.FixtureRequest) -> Any:
    return functools.partial(served, **FRAME_LAYERS[request.param])

"""Liveness and readiness endpoints over the transports' ``alive`` and ``ready``.

``GET <path>/live``: 200 while the event loop answers (it is serving this request) and
every transport's consume loops run; 503 when one died (restart the process).
``GET <path>/ready``: 200 when every transport is connected and serving (Kafka: the
consumer joined its group and got its assignment); 503 before that, while draining and
after a failure (send no traffic here).

Both answer ``{"status": "up"|"down", "transports": {"<name>": "up"|"down", ...}}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from framework.transports.base import Transport

_NO_STORE = {"Cache-Control": "no-store"}


def _names(transports: Sequence[Transport]) -> list[str]:
    """Transport names, made unique (``kafka``, ``kafka-2``) for the JSON body."""
    seen: dict[str, int] = {}
    names = []
    for t in transports:
        seen[t.name] = seen.get(t.name, 0) + 1
        names.append(t.name if seen[t.name] == 1 else f"{t.name}-{seen[t.name]}")
    return names


def _check(transports: Sequence[Transport], attribute: str) -> JSONResponse:
    states: dict[str, str] = {}
    healthy = True
    for name, transport in zip(_names(transports), transports, strict=True):
        try:
            up = bool(getattr(transport, attribute))
        except Exception:  # a broken probe is a down transport, not a 500
            up = False
        states[name] = "up" if up else "down"
        healthy = healthy and up
    body = {"status": "up" if healthy else "down", "transports": states}
    return JSONResponse(body, status_code=200 if healthy else 503, headers=_NO_STORE)


def health_routes(path: str, transports: Sequence[Transport]) -> list[BaseRoute]:
    """``<path>/live`` and ``<path>/ready`` for ``transports``."""
    base = path.rstrip("/")

    async def live(_: Request) -> JSONResponse:
        return _check(transports, "alive")

    async def ready(_: Request) -> JSONResponse:
        return _check(transports, "ready")

    return [
        Route(f"{base}/live", live, methods=["GET"], name="health.live"),
        Route(f"{base}/ready", ready, methods=["GET"], name="health.ready"),
    ]

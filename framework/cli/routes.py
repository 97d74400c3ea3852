"""``framework routes module:attr``: what an app serves, as a table or as JSON.

The app is described with ``Application.describe()``: providers are created and handlers
compiled, but no lifecycle hook runs and no transport, client or relay connects, so the
listing needs no broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from framework.application import AppDescription
from framework.cli.errors import CliError, UserCodeError
from framework.cli.loader import load_app
from framework.exceptions import ConfigurationError


def _endpoint(transport: str, route: BaseRoute) -> dict[str, Any]:
    if isinstance(route, WebSocketRoute):
        kind, methods = "websocket", None
    elif isinstance(route, Route):
        kind, methods = "http", sorted((route.methods or set()) - {"HEAD"})
    elif isinstance(route, Mount):
        kind, methods = "mount", None
    else:
        kind, methods = type(route).__name__, None
    path = getattr(route, "path", "?")
    return {"transport": transport, "kind": kind, "methods": methods, "path": path}


def as_data(desc: AppDescription) -> dict[str, Any]:
    """The description as plain JSON-ready data (``framework routes --json``)."""
    handlers = sorted(desc.handlers, key=lambda h: (h.pattern, h.kind, h.name))
    return {
        "transports": desc.transports,
        "http": [
            {"kind": r.kind, "method": r.method, "path": r.path, "handler": r.name}
            for r in desc.http_routes
        ],
        "endpoints": [_endpoint(name, route) for name, route in desc.endpoints],
        "patterns": [
            {
                "kind": h.kind,
                "pattern": h.pattern,
                "transports": [t for t in desc.transports if h.serves(t)],
                "declared_transports": sorted(h.transports) if h.transports is not None else None,
                "handler": h.name,
            }
            for h in handlers
        ],
    }


def _table(title: str, header: Sequence[str], rows: list[list[str]]) -> list[str]:
    lines = [title]
    if not rows:
        return [*lines, "  (none)", ""]
    widths = [max(len(r[i]) for r in [list(header), *rows]) for i in range(len(header))]
    for row in [list(header), *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return [*lines, ""]


def _served(pattern: dict[str, Any]) -> str:
    if pattern["transports"]:
        return ",".join(pattern["transports"])
    # Limited to transports the app does not have: nothing will ever call it.
    return f"- (only {','.join(pattern['declared_transports'])})"


def render(data: dict[str, Any]) -> str:
    """The human-readable tables."""
    lines = [f"Transports: {', '.join(data['transports'])}", ""]
    lines += _table(
        "HTTP routes",
        ["KIND", "METHOD", "PATH", "HANDLER"],
        [[r["kind"], r["method"], r["path"], r["handler"]] for r in data["http"]],
    )
    lines += _table(
        "Transport endpoints (WebSocket, SSE)",
        ["TRANSPORT", "KIND", "PATH"],
        [
            [e["transport"], " ".join(e["methods"]) if e["methods"] else e["kind"], e["path"]]
            for e in data["endpoints"]
        ],
    )
    lines += _table(
        "Message and event patterns",
        ["KIND", "PATTERN", "TRANSPORTS", "HANDLER"],
        [[p["kind"], p["pattern"], _served(p), p["handler"]] for p in data["patterns"]],
    )
    return "\n".join(lines).rstrip() + "\n"


async def _describe(target: str, app_dir: str) -> AppDescription:
    app = load_app(target, app_dir)
    try:
        return await app.describe()
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        raise UserCodeError("Building the app failed", exc) from None


def command(args: Any) -> int:
    """``framework routes`` from parsed arguments."""
    data = as_data(asyncio.run(_describe(args.target, args.app_dir)))
    print(json.dumps(data, indent=2) if args.json else render(data), end="\n" if args.json else "")
    return 0

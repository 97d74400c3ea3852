"""``framework asyncapi module:attr``: the app's AsyncAPI 3.0.0 document, JSON or YAML.

Built like ``framework routes``: with ``Application.describe()``, so no hook runs and no
transport, client or relay connects (an app configured for Kafka needs no broker).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from framework.application import Application
from framework.asyncapi import build_asyncapi, to_yaml
from framework.cli.errors import CliError, UsageError, UserCodeError
from framework.cli.loader import load_app
from framework.exceptions import ConfigurationError

FORMATS = ("json", "yaml")


async def _document(app: Application, args: Any) -> dict[str, Any]:
    try:
        return await build_asyncapi(
            app,
            title=args.title,
            version=args.api_version,
            description=args.description,
            http_host=args.http_host,
            secure=args.secure,
            only_transports=args.transport,
        )
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        raise UserCodeError("Building the app failed", exc) from None


def _format(args: Any) -> str:
    if args.format is not None:
        return str(args.format)
    if args.output is not None and Path(args.output).suffix.lower() in (".yaml", ".yml"):
        return "yaml"
    return "json"


def command(args: Any) -> int:
    """``framework asyncapi`` from parsed arguments."""
    app = load_app(args.target, args.app_dir)
    if getattr(args, "serve", False):
        return serve(app, args)
    doc = asyncio.run(_document(app, args))
    fmt = _format(args)
    text = to_yaml(doc) if fmt == "yaml" else json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        print(text, end="")
        return 0
    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"--output {args.output!r} is a directory; name a file")
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"Cannot write {args.output!r}: {exc.strerror or exc}") from None
    return 0


def serve(app: Application, args: Any) -> int:
    """``framework asyncapi serve``: the document as a web page, ``/asyncapi`` (HTML),
    ``/asyncapi.json`` and ``/asyncapi.yaml``, until Ctrl-C. The app itself is only
    described (``Application.describe``): no hook runs, no transport connects."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    from framework.asyncapi._html import render_html

    doc = asyncio.run(_document(app, args))
    page, yaml = render_html(doc), to_yaml(doc)
    routes = [
        Route("/", lambda _: RedirectResponse("/asyncapi")),
        Route("/asyncapi", lambda _: HTMLResponse(page)),
        Route("/asyncapi.json", lambda _: JSONResponse(doc)),
        Route("/asyncapi.yaml", lambda _: Response(yaml, media_type="application/yaml")),
    ]
    print(f"Serving the AsyncAPI document of {args.target} at /asyncapi", flush=True)
    uvicorn.run(Starlette(routes=routes), host=args.host, port=args.port, log_level="info")
    return 0

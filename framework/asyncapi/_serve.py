"""``mount_asyncapi(app)``: serve the app's AsyncAPI document over HTTP.

Three routes on the app's starlette app: ``GET <path>`` (an HTML page), ``GET
<path>.json`` and ``GET <path>.yaml``. The document is built from the running app's
compiled handlers, with the WebSocket and SSE server addresses taken from the request
(its ``Host`` and scheme), and cached per address.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from framework.application import Application
from framework.asyncapi._document import build_asyncapi
from framework.asyncapi._html import render_html
from framework.asyncapi._yaml import to_yaml
from framework.exceptions import ConfigurationError

MAX_CACHED_HOSTS = 16
"""Documents kept per (host, scheme); ``Host`` is client-controlled, so the cache is
cleared when it reaches this size."""


def mount_asyncapi(
    app: Application,
    path: str = "/asyncapi",
    *,
    title: str | None = None,
    version: str = "1.0.0",
    description: str | None = None,
    only_transports: Iterable[str] | None = None,
) -> list[Route]:
    """Serve ``app``'s AsyncAPI 3.0.0 document at ``path`` (HTML), ``path.json`` and
    ``path.yaml``. Call it before or after ``create_app``'s app starts.

    Args:
        app: the application to describe and to mount the routes on.
        path: URL path of the HTML page; must start with ``/``.
        title: ``info.title`` (default: the root module's class name).
        version: ``info.version``.
        description: ``info.description``.
        only_transports: document only these transport names (``None``: all).

    Returns:
        The mounted starlette routes.
    """
    if not path.startswith("/") or path.endswith("/"):
        raise ConfigurationError(f"AsyncAPI path {path!r} must start with '/' and not end with '/'")
    only = list(only_transports) if only_transports is not None else None
    cache: dict[tuple[str, bool], dict[str, Any]] = {}

    async def document(request: Request) -> dict[str, Any]:
        secure = request.url.scheme in ("https", "wss")
        key = (request.url.netloc, secure)
        doc = cache.get(key)
        if doc is None:
            doc = await build_asyncapi(
                app,
                title=title,
                version=version,
                description=description,
                http_host=request.url.netloc,
                secure=secure,
                only_transports=only,
            )
            if len(cache) >= MAX_CACHED_HOSTS:
                cache.clear()
            cache[key] = doc
        return doc

    async def html(request: Request) -> Response:
        return HTMLResponse(render_html(await document(request)))

    async def as_json(request: Request) -> Response:
        return JSONResponse(await document(request))

    async def as_yaml(request: Request) -> Response:
        return Response(to_yaml(await document(request)), media_type="application/yaml")

    routes = [
        Route(path, html, methods=["GET"], name="asyncapi.html"),
        Route(path + ".json", as_json, methods=["GET"], name="asyncapi.json"),
        Route(path + ".yaml", as_yaml, methods=["GET"], name="asyncapi.yaml"),
    ]
    app.asgi.router.routes.extend(routes)
    return routes

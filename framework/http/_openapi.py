"""The OpenAPI 3.1 document of an app's HTTP routes, from the same type hints that bind
the parameters (``_routing.py``): path parameters, query parameters, the JSON body, and
the return type as the success response. Schemas are pydantic's JSON Schema (2020-12,
which OpenAPI 3.1 uses as is), shared under ``components/schemas``.

Message handlers are not HTTP operations: the AsyncAPI document describes them.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from framework.exceptions import ConfigurationError
from framework.http._routing import _PATH_PARAM, HttpRoute, _is_body_type

if TYPE_CHECKING:
    from framework.application import Application

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "properties": {
        "status": {"const": "error"},
        "message": {"type": "string"},
        "statusCode": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["status", "message"],
}


class _Schemas:
    """JSON Schemas of types, every pydantic model (and each of its definitions) kept once
    under ``components/schemas`` and referred to by ``$ref``."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": _ERROR}

    def of(self, tp: Any) -> dict[str, Any]:
        return self._schema(tp, "serialization")

    def of_input(self, tp: Any) -> dict[str, Any]:
        return self._schema(tp, "validation")

    def _schema(self, tp: Any, mode: Any) -> dict[str, Any]:
        schema = TypeAdapter(tp).json_schema(ref_template=_REF, mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            self.components.setdefault(name, definition)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            self.components.setdefault(tp.__name__, schema)
            return {"$ref": _REF.format(model=tp.__name__)}
        return schema


def _stream_item(tp: Any) -> Any | None:
    origin = typing.get_origin(tp)
    if origin is not None and isinstance(origin, type) and issubclass(origin, AsyncIterator):
        args = typing.get_args(tp)
        return args[0] if args else Any
    return None


def _operation(route: HttpRoute, schemas: _Schemas) -> dict[str, Any]:
    fn, hints = route.handler, route.hints or {}
    assert fn is not None
    path_params = set(_PATH_PARAM.findall(route.path))
    parameters: list[dict[str, Any]] = []
    body: dict[str, Any] | None = None
    for name, param in inspect.signature(fn).parameters.items():
        hint = hints.get(name, str)
        if name == "self" or hint is Request:
            continue
        if name in path_params:
            parameters.append(
                {"name": name, "in": "path", "required": True, "schema": schemas.of_input(hint)}
            )
        elif _is_body_type(hint):
            content = {"application/json": {"schema": schemas.of_input(hint)}}
            body = {"required": True, "content": content}
        else:
            required = param.default is inspect.Parameter.empty
            schema = schemas.of_input(hint)
            if not required:
                schema = {**schema, "default": json.loads(json.dumps(param.default, default=str))}
            item: dict[str, Any] = {"name": name, "in": "query", "required": required}
            if typing.get_origin(hint) is list:
                item.update(style="form", explode=True)
            parameters.append({**item, "schema": schema})
    summary, _, description = (inspect.getdoc(fn) or "").partition("\n")
    op: dict[str, Any] = {"operationId": route.name, "tags": [route.name.split(".")[0]]}
    if summary:
        op["summary"] = summary.strip()
    if description.strip():
        op["description"] = description.strip()
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    op["responses"] = _responses(route, hints.get("return", Any), schemas, body, parameters)
    return op


def _responses(
    route: HttpRoute,
    returns: Any,
    schemas: _Schemas,
    body: dict[str, Any] | None,
    parameters: list[dict[str, Any]],
) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}
    ok: dict[str, Any] = {"description": "Success"}
    item = _stream_item(returns)
    if route.kind == "sse":
        described = "" if item is None else f" (each event's data: {_title(item)})"
        ok = {
            "description": "A text/event-stream of events" + described,
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    elif returns is None or returns is type(None):
        ok = {"description": "No content"}
    elif not (isinstance(returns, type) and issubclass(returns, Response)):
        ok["content"] = {"application/json": {"schema": schemas.of(returns)}}
    out: dict[str, Any] = {str(route.status): ok}
    if body is not None or parameters:
        out["422"] = {"description": "Validation failed", "content": error}
    if body is not None:
        out["413"] = {"description": "The request body is larger than the limit", "content": error}
    out["default"] = {
        "description": "An error (HttpException status, 403 refused)",
        "content": error,
    }
    return out


def _title(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def openapi_document(
    routes: Iterable[HttpRoute],
    *,
    title: str,
    version: str = "1.0.0",
    description: str | None = None,
    servers: Iterable[str] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for compiled HTTP routes (see ``build_openapi``)."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.handler is None:
            continue
        path = _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, schemas)
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    doc: dict[str, Any] = {"openapi": OPENAPI_VERSION, "info": info}
    if servers:
        doc["servers"] = [{"url": url} for url in servers]
    doc["paths"] = paths
    doc["components"] = {"schemas": dict(sorted(schemas.components.items()))}
    return doc


async def build_openapi(
    app: Application,
    *,
    title: str | None = None,
    version: str = "1.0.0",
    description: str | None = None,
    servers: Iterable[str] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s HTTP routes (``@get``/``@post``/... and
    ``@sse``), built as ``framework routes`` builds the app: no hook runs and nothing
    connects.

    Args:
        app: the application.
        title: ``info.title`` (default: the root module's class name).
        version: ``info.version``.
        description: ``info.description``.
        servers: base URLs for ``servers`` (default: none, i.e. relative to the host).

    Raises:
        ConfigurationError: the app is wired wrongly (as ``start`` would raise).
    """
    described = await app.describe()
    root = app.root_module
    name = getattr(getattr(root, "module", root), "__name__", "App")
    return openapi_document(
        described.http_routes,
        title=title or name,
        version=version,
        description=description,
        servers=servers,
    )


def mount_openapi(
    app: Application,
    path: str = "/openapi.json",
    *,
    title: str | None = None,
    version: str = "1.0.0",
    description: str | None = None,
) -> list[Route]:
    """Serve ``app``'s OpenAPI document at ``path`` (JSON), built on the first request.

    Args:
        app: the application to describe and to mount the route on.
        path: URL path; must start with ``/``.
        title: ``info.title``; version: ``info.version``; description:
            ``info.description``.

    Returns:
        The mounted starlette routes.
    """
    from starlette.responses import JSONResponse

    if not path.startswith("/") or path.endswith("/"):
        raise ConfigurationError(f"OpenAPI path {path!r} must start with '/' and not end with '/'")
    cache: dict[str, Any] = {}

    async def document(request: Request) -> Response:
        if "doc" not in cache:
            routes = app.http_routes or (await app.describe()).http_routes
            root = app.root_module
            name = getattr(getattr(root, "module", root), "__name__", "App")
            cache["doc"] = openapi_document(
                routes, title=title or name, version=version, description=description
            )
        return JSONResponse(cache["doc"])

    routes = [Route(path, document, methods=["GET"], name="openapi")]
    app.asgi.router.routes.extend(routes)
    return routes

"""Controller methods as starlette routes, through the same pipeline as messages.

Parameters bind by type hint, once per route at start-up:
- a name that appears in the path (``/{order_id}``): the path parameter, converted;
- a pydantic model (or a list/dict of them): the JSON body, validated from the bytes;
- ``starlette.requests.Request``: the request itself;
- anything else: a query parameter (required unless it has a default).

Routes with fewer path parameters are matched first (``/notes/search`` before
``/notes/{id}``), otherwise in declaration order.

Responses: a starlette ``Response`` as is; ``None`` as an empty body; anything else as
JSON. Errors: validation 422, ``HttpException`` its status, ``RpcException`` 400, a
refused guard 403, anything else 500 "Internal server error" (logged with traceback).
"""

from __future__ import annotations

import inspect
import logging
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from framework.di.container import REQUEST, Container, ProviderRecord
from framework.di.hints import type_hints
from framework.di.metadata import CONTROLLER_ATTR, Scope
from framework.exceptions import ConfigurationError, HttpException, RpcException
from framework.http._body import read_body
from framework.http._decorators import RouteMeta, routes_of
from framework.http._limits import DEFAULT_MAX_BODY
from framework.http._sse import EventStreamResponse
from framework.messaging._pipeline import GlobalEnhancers, Pipeline, build_pipeline
from framework.messaging.codecs import encode
from framework.messaging.context import ExecutionContext
from framework.messaging.errors import error_payload
from framework.messaging.router import handler_methods
from framework.messaging.streams import is_stream

logger = logging.getLogger("framework.http")

_PATH_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[^}]*)?}")

Binder = Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One compiled route, for listings (``framework routes``, OpenAPI) and the app."""

    kind: str
    method: str
    path: str
    name: str
    route: BaseRoute
    handler: Callable[..., Any] | None = None
    hints: dict[str, Any] | None = None
    status: int = 200


def json_response(body: Any, status_code: int) -> Response:
    return Response(encode(body), status_code, media_type="application/json")


def error_status(exc: BaseException | None) -> int:
    """The HTTP status of a failure: validation 422, ``HttpException`` its status,
    ``RpcException`` 400, anything else 500."""
    if isinstance(exc, ValidationError):
        return 422
    if isinstance(exc, HttpException):
        return exc.status_code
    if isinstance(exc, RpcException):
        return 400
    return 500


def failure_response(payload: dict[str, Any], exc: BaseException | None) -> Response:
    """An error reply (``error_payload(exc)``) as the HTTP response for ``exc``."""
    status = error_status(exc)
    return json_response({**payload, "statusCode": status}, status)


def error_response(exc: Exception, where: str) -> Response:
    return failure_response(error_payload(exc, where=where), exc)


def _is_body_type(hint: Any) -> bool:
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return True
    origin = typing.get_origin(hint)
    return origin in (list, dict) and any(_is_body_type(a) for a in typing.get_args(hint))


def _binder(
    name: str, hint: Any, default: Any, path_params: set[str], owner: str, max_body: int
) -> Binder:
    if hint is Request:

        async def bind_request(request: Request) -> Any:
            return request

        return bind_request
    if name in path_params:
        convert = TypeAdapter(hint).validate_python

        async def bind_path(request: Request) -> Any:
            try:
                return convert(request.path_params[name])
            except ValidationError as exc:
                raise _located(exc, "path", name) from None

        return bind_path
    if _is_body_type(hint):
        adapter: TypeAdapter[Any] = TypeAdapter(hint)

        async def bind_body(request: Request) -> Any:
            body = await read_body(request, max_body)
            if body is None:
                message = f"The request body is larger than {max_body} bytes"
                raise HttpException(413, {"message": message})
            return adapter.validate_json(body)

        return bind_body
    origin = typing.get_origin(hint)
    is_list = origin is list
    convert_q = TypeAdapter(hint).validate_python
    required = default is inspect.Parameter.empty

    async def bind_query(request: Request) -> Any:
        params = request.query_params
        if name not in params:
            if required:
                raise HttpException(422, {"message": f"Missing query parameter {name!r}"})
            return default
        raw = params.getlist(name) if is_list else params[name]
        try:
            return convert_q(raw)
        except ValidationError as exc:
            raise _located(exc, "query", name) from None

    return bind_query


def _located(exc: ValidationError, where: str, name: str) -> HttpException:
    errors = [{**e, "loc": [where, name, *e["loc"]]} for e in error_payload(exc)["errors"]]
    return HttpException(422, {"message": "Validation failed", "errors": errors})


def _full_path(prefix: str, path: str) -> str:
    joined = "/".join(p.strip("/") for p in (prefix, path) if p.strip("/"))
    return "/" + joined


def _build_endpoint(
    container: Container,
    rec: ProviderRecord,
    controller: type,
    attr: str,
    fn: Callable[..., Any],
    meta: RouteMeta,
    path: str,
    pipeline: Pipeline,
) -> Callable[[Request], Awaitable[Response]]:
    owner = f"{controller.__qualname__}.{attr}"
    hints = type_hints(fn, owner, controller.__name__, (controller, rec.module.cls))
    path_params = set(_PATH_PARAM.findall(path))
    sse_options = dict(meta.options)
    max_body = sse_options.pop("max_body", DEFAULT_MAX_BODY)
    binders: list[tuple[str, Binder]] = []
    for name, param in inspect.signature(fn).parameters.items():
        if name == "self":
            continue
        hint = hints.get(name, str)
        binders.append((name, _binder(name, hint, param.default, path_params, owner, max_body)))
    status = meta.status_code or (201 if meta.method == "POST" else 200)
    request_scoped = rec.scope is not Scope.SINGLETON
    if unknown := set(sse_options) - {"heartbeat", "max_buffer"}:
        raise ConfigurationError(f"{owner}: unknown @sse options {sorted(unknown)}")

    async def invoke(request: Request) -> Any:
        instance = (
            await container.resolve(rec, {REQUEST: request}) if request_scoped else rec.instance
        )
        kwargs = {name: await bind(request) for name, bind in binders}
        if pipeline.pipes:
            ectx = ExecutionContext("http", "http", path, fn, controller, request, None)
            for name, _ in binders:
                kwargs[name] = await pipeline.transform(kwargs[name], ectx)
        result = getattr(instance, attr)(**kwargs)
        if inspect.iscoroutine(result):  # not any awaitable: an Observable is one
            result = await result
        return result

    async def endpoint(request: Request) -> Response:
        try:
            if pipeline:
                ectx = ExecutionContext("http", "http", path, fn, controller, request, None)
                result = await pipeline.run(ectx, lambda: invoke(request))
            else:
                result = await invoke(request)
        except Exception as exc:
            return error_response(exc, owner)
        if isinstance(result, Response):
            return result
        if meta.kind == "sse":
            if not is_stream(result):
                raise ConfigurationError(
                    f"{owner} is an @sse route; return an async iterator or an Observable"
                )
            return EventStreamResponse(result, where=owner, **sse_options)
        if result is None:
            return Response(b"", status)
        return json_response(result, status)

    return endpoint


async def build_http_routes(
    container: Container, global_enhancers: GlobalEnhancers
) -> list[HttpRoute]:
    """Compile every controller's HTTP and SSE routes."""
    out: list[HttpRoute] = []
    for rec in container.controllers():
        cls = rec.provider.use_class
        assert cls is not None
        prefix = getattr(cls, CONTROLLER_ATTR).prefix if hasattr(cls, CONTROLLER_ATTR) else ""
        for attr, fn in handler_methods(cls):
            metas = routes_of(fn)
            if not metas:
                continue
            pipeline = await build_pipeline(container, rec.module, cls, fn, global_enhancers)
            for meta in metas:
                path = _full_path(prefix, meta.path)
                endpoint = _build_endpoint(container, rec, cls, attr, fn, meta, path, pipeline)
                name = f"{cls.__qualname__}.{attr}"
                route = Route(path, endpoint, methods=[meta.method], name=name)
                hints = type_hints(fn, name, cls.__name__, (cls, rec.module.cls))
                status = meta.status_code or (201 if meta.method == "POST" else 200)
                out.append(HttpRoute(meta.kind, meta.method, path, name, route, fn, hints, status))
    # Literal paths before parameterised ones, so /notes/search is not taken by
    # /notes/{note_id} whatever the declaration order (stable otherwise).
    out.sort(key=lambda r: len(_PATH_PARAM.findall(r.path)))
    return out

"""HTTP route decorators for controller methods: metadata only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from framework.di.hints import capture_locals
from framework.http._limits import DEFAULT_MAX_BODY

F = TypeVar("F", bound=Callable[..., Any])

ROUTES_ATTR = "__framework_routes__"


@dataclass(frozen=True, slots=True)
class RouteMeta:
    kind: Literal["http", "sse"]
    method: str
    path: str
    status_code: int | None
    options: tuple[tuple[str, Any], ...] = ()


def _route(
    kind: Literal["http", "sse"], method: str, path: str, status_code: int | None, **options: Any
) -> Callable[[F], F]:
    meta = RouteMeta(kind, method, path, status_code, tuple(sorted(options.items())))

    def decorate(fn: F) -> F:
        routes = fn.__dict__.get(ROUTES_ATTR)
        if routes is None:
            routes = []
            setattr(fn, ROUTES_ATTR, routes)
        routes.append(meta)
        capture_locals(fn)
        return fn

    return decorate


def get(path: str = "", *, status_code: int | None = None) -> Callable[[F], F]:
    """``GET`` route under the controller's prefix; ``{name}`` binds a path parameter."""
    return _route("http", "GET", path, status_code)


def post(
    path: str = "", *, status_code: int | None = None, max_body: int = DEFAULT_MAX_BODY
) -> Callable[[F], F]:
    """``POST`` route; answers 201 unless ``status_code`` says otherwise (as NestJS).

    ``max_body``: bytes the JSON body may have (default 1 MiB); a larger one is answered
    413 before the handler runs, without reading past the limit.
    """
    return _route("http", "POST", path, status_code, max_body=max_body)


def put(
    path: str = "", *, status_code: int | None = None, max_body: int = DEFAULT_MAX_BODY
) -> Callable[[F], F]:
    """``PUT`` route (``max_body`` as for ``post``)."""
    return _route("http", "PUT", path, status_code, max_body=max_body)


def patch(
    path: str = "", *, status_code: int | None = None, max_body: int = DEFAULT_MAX_BODY
) -> Callable[[F], F]:
    """``PATCH`` route (``max_body`` as for ``post``)."""
    return _route("http", "PATCH", path, status_code, max_body=max_body)


def delete(path: str = "", *, status_code: int | None = None) -> Callable[[F], F]:
    """``DELETE`` route."""
    return _route("http", "DELETE", path, status_code)


def sse(path: str = "", **options: Any) -> Callable[[F], F]:
    """A ``text/event-stream`` route from a method returning an async iterator.

    Each item becomes one event: a pydantic model or dict as JSON ``data``, a string as
    is, or a ``ServerSentEvent`` to set ``event``, ``id``, ``retry`` and comments.
    Options: ``heartbeat`` (seconds between keep-alive comments, default 15),
    ``max_buffer`` (events queued for a slow client before it is dropped, default 100).
    """
    return _route("sse", "GET", path, None, **options)


def routes_of(fn: Any) -> list[RouteMeta]:
    return list(getattr(fn, "__dict__", {}).get(ROUTES_ATTR) or [])

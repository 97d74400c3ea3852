"""Admitting a connection: the origin list, connection guards, log redaction."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

logger = logging.getLogger("framework.websocket")


@dataclass(slots=True)
class Handshake:
    """The opening HTTP request of a WebSocket connection, as guards see it.

    Attributes:
        path: the URL path.
        headers: the request headers (case-insensitive).
        query: the query parameters (last value wins).
        client: ``(host, port)`` of the peer, when known.
        data: values to keep for the connection; they become ``socket.data``.
        auth: the Socket.IO ``auth`` payload (``None`` on plain WebSocket).
        namespace: the Socket.IO namespace being connected to (``None`` on WebSocket).
    """

    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    client: tuple[str, int] | None
    data: dict[str, Any] = field(default_factory=dict)
    auth: Any = None
    namespace: str | None = None

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")


@runtime_checkable
class ConnectionGuard(Protocol):
    """Decides, before the connection is accepted, whether a client may connect.

    A guard is an object with ``can_connect(handshake)`` or a plain callable taking the
    ``Handshake``; either may be async. ``False`` (or an exception) refuses the
    connection with HTTP 403.
    """

    def can_connect(self, handshake: Handshake) -> bool | Awaitable[bool]: ...


Guard = ConnectionGuard | Callable[[Handshake], "bool | Awaitable[bool]"]


def _guard_name(guard: Any) -> str:
    return getattr(guard, "__qualname__", None) or type(guard).__qualname__


async def admit(handshake: Handshake, guards: tuple[Guard, ...]) -> bool:
    """Run every guard in order; the first refusal wins.

    A guard that raises refuses the connection. Only the exception's type is logged:
    its message may hold the credentials the guard was checking.
    """
    for guard in guards:
        check = guard.can_connect if isinstance(guard, ConnectionGuard) else guard
        try:
            verdict = check(handshake)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception as exc:
            logger.warning(
                "Connection guard %s raised %s; connection refused",
                _guard_name(guard),
                type(exc).__name__,
            )
            return False
        if not verdict:
            return False
    return True


def origin_allowed(origin: str | None, allowed: frozenset[str] | None) -> bool:
    """``allowed=None`` admits every origin; otherwise the ``Origin`` header must be in
    the list. A request without ``Origin`` (not a browser) is admitted: browsers always
    send it, so a missing header cannot be a cross-site page."""
    if allowed is None or origin is None:
        return True
    return origin in allowed or "*" in allowed


_WS_LOG = re.compile(r'"WebSocket %s"')


class RedactQueryFilter(logging.Filter):
    """Removes query strings from uvicorn's WebSocket access lines.

    Browsers cannot set headers on a WebSocket, so tokens often travel in the query
    string; uvicorn logs the path with its query for every handshake.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and _WS_LOG.search(record.msg) and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                a.split("?", 1)[0] + "?<redacted>" if isinstance(a, str) and "?" in a else a
                for a in args
            )
        return True


_FILTER = RedactQueryFilter()


def install_log_redaction() -> None:
    """Add the redaction filter to uvicorn's error logger (once)."""
    target = logging.getLogger("uvicorn.error")
    if _FILTER not in target.filters:
        target.addFilter(_FILTER)

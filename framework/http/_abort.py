"""Dropping a client connection from under an ASGI app.

ASGI has no message for "drop this TCP connection now", and closing nicely is not
enough for a client that stopped reading: the server's ``transport.close()`` waits to
flush what the client never reads, so the socket stays ESTABLISHED and keeps its
kernel buffers. uvicorn's ``send`` is a bound method of an object holding the asyncio
transport (its protocol or request cycle); starlette wraps it in closures. When the
transport can be found that way, abort it; otherwise nothing happens here.
"""

from __future__ import annotations

import asyncio
from typing import Any

_MAX_WRAPPERS = 4
"""Closures looked through (starlette's exception handling wraps ``send`` once)."""


def _transport(send: Any, depth: int = _MAX_WRAPPERS) -> asyncio.Transport | None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if isinstance(transport, asyncio.Transport):
        return transport
    if depth == 0:
        return None
    for cell in getattr(send, "__closure__", None) or ():
        inner = cell.cell_contents
        if callable(inner):
            found = _transport(inner, depth - 1)
            if found is not None:
                return found
    return None


def abort_connection(send: Any) -> bool:
    """Abort the TCP connection behind an ASGI ``send``; ``False`` when the server does
    not expose it (the caller's own cancellation is then all that happens)."""
    transport = _transport(send)
    if transport is None:
        return False
    transport.abort()  # also when already closing: a close still waits to flush
    return True

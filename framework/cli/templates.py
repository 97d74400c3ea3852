"""The files ``framework generate`` writes, one per kind.

Placeholders: ``{{snake}}``, ``{{kebab}}``, ``{{pascal}}`` (see ``Names.render``).
"""

from __future__ import annotations

MODULE = '''"""The {{snake}} module."""

from __future__ import annotations

from framework import module


@module(imports=[], controllers=[], providers=[], exports=[])
class {{pascal}}Module:
    pass
'''

CONTROLLER = '''"""The {{snake}} controller: HTTP routes under /{{kebab}} and message handlers."""

from __future__ import annotations

from framework import controller, get, message_pattern


@controller("/{{kebab}}")
class {{pascal}}Controller:
    @get()
    async def find_all(self) -> list[str]:
        return []

    @message_pattern("{{snake}}.ping")
    async def ping(self, data: str) -> str:
        return data
'''

SERVICE = '''"""The {{snake}} service."""

from __future__ import annotations

from framework import injectable


@injectable()
class {{pascal}}Service:
    def __init__(self) -> None:
        self.items: list[str] = []
'''

GATEWAY = '''"""The {{snake}} WebSocket gateway: handlers for ``{"event", "data"}`` frames."""

from __future__ import annotations

from typing import Any

from framework import subscribe_message, websocket_gateway


@websocket_gateway()
class {{pascal}}Gateway:
    @subscribe_message("{{snake}}.echo")
    async def echo(self, data: Any) -> Any:
        return data
'''

GUARD = '''"""The {{snake}} guard: use it with ``@use_guards({{pascal}}Guard)``."""

from __future__ import annotations

from framework import ExecutionContext, injectable


@injectable()
class {{pascal}}Guard:
    def can_activate(self, context: ExecutionContext) -> bool:
        """Return False to refuse the call (HTTP 403, or an error reply)."""
        return True
'''

INTERCEPTOR = '''"""The {{snake}} interceptor: ``@use_interceptors({{pascal}}Interceptor)``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from framework import ExecutionContext, injectable

logger = logging.getLogger(__name__)


@injectable()
class {{pascal}}Interceptor:
    async def intercept(
        self, context: ExecutionContext, call_next: Callable[[], Awaitable[Any]]
    ) -> Any:
        started = time.perf_counter()
        try:
            return await call_next()
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.debug("%s took %.1f ms", context.pattern, elapsed_ms)
'''

COMPONENTS: dict[str, tuple[str, str]] = {
    # kind: (template, the @module(...) list it joins)
    "module": (MODULE, "imports"),
    "controller": (CONTROLLER, "controllers"),
    "service": (SERVICE, "providers"),
    "gateway": (GATEWAY, "providers"),  # NestJS lists gateways as providers
    "guard": (GUARD, "providers"),  # so it can be injected, and use_guards reuses it
    "interceptor": (INTERCEPTOR, "providers"),
}

"""Contract harness for the in-memory transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from framework import Application, create_app
from framework.transports.base import ClientProxy

NAME = "memory"


@dataclass
class Served:
    """What a harness yields: the running server app, a client, the transport's name."""

    app: Application
    client: ClientProxy
    transport: str


@asynccontextmanager
async def serve(root_module: Any) -> AsyncIterator[Served]:
    """Start ``root_module`` on this transport; yield a client that talks to it."""
    async with create_app(root_module) as app:
        yield Served(app, app.client, "memory")

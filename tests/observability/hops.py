"""A two-hop app for the tracing and logging tests: ``hop.one`` (request) emits
``hop.two`` (event); an HTTP route starts the chain. Each hop records what it saw."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from framework import (
    ClientProxy,
    MessageContext,
    controller,
    event_pattern,
    get,
    injectable,
    message_pattern,
    module,
)
from framework.observability import current_message

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"

log = logging.getLogger("tests.hops")


@dataclass(frozen=True)
class Hop:
    transport: str | None
    trace_id: str | None
    parent_span_id: str | None
    span_id: str | None
    traceparent_header: Any


@injectable()
class Seen:
    def __init__(self) -> None:
        self.hops: dict[str, Hop] = {}
        self.done = asyncio.Event()

    def record(self, name: str, ctx: MessageContext) -> None:
        scope = current_message()
        self.hops[name] = Hop(
            scope.transport if scope else None,
            scope.trace_id if scope else None,
            scope.parent_span_id if scope else None,
            scope.span_id if scope else None,
            ctx.headers.get("traceparent"),
        )
        if name == "two":
            self.done.set()


@controller("/hops")
class HopsController:
    def __init__(self, client: ClientProxy, seen: Seen) -> None:
        self.client = client
        self.seen = seen

    @get("/start")
    async def start(self) -> int:
        result: int = await self.client.send("hop.one", 1)
        return result

    @message_pattern("hop.one")
    async def one(self, n: int, ctx: MessageContext) -> int:
        self.seen.record("one", ctx)
        log.info("hop one handling %d", n)
        await self.client.emit("hop.two", n)
        return n + 1

    @event_pattern("hop.two")
    async def two(self, n: int, ctx: MessageContext) -> None:
        self.seen.record("two", ctx)
        log.info("hop two handling %d", n)


@module(controllers=[HopsController], providers=[Seen])
class HopsModule:
    pass

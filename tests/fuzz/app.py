"""The app every fuzz test drives: handlers of each kind (typed, any payload, a stream,
failing ones, an event), and a server on its own thread for the synchronous Hypothesis
tests to call over real sockets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from framework import (
    Application,
    RpcException,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
)
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running


class Item(BaseModel):
    n: int
    name: str


@controller()
class FuzzController:
    def __init__(self) -> None:
        self.notes = 0

    @message_pattern("echo")
    async def echo(self, payload: Any) -> Any:
        return payload

    @message_pattern("typed")
    async def typed(self, item: Item) -> dict[str, Any]:
        return {"n": item.n + 1, "name": item.name}

    @message_pattern("count")
    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(min(max(n, 0), 3)):
            yield i

    @message_pattern("fail")
    async def fail(self, payload: Any) -> None:
        raise RuntimeError("internal detail")

    @message_pattern("reject")
    async def reject(self, payload: Any) -> None:
        raise RpcException({"status": "error", "message": "rejected"})

    @event_pattern("note")
    async def note(self, payload: Any) -> None:
        self.notes += 1


@module(controllers=[FuzzController])
class FuzzModule:
    pass


@contextmanager
def served_in_thread(app: Application) -> Iterator[int]:
    """Serve ``app`` under uvicorn on a thread of its own; yields the port."""
    ready: list[int] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        async with uvicorn_running(app) as port:
            ready.append(port)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        if not started.wait(30 * TIME_FACTOR):
            raise RuntimeError("the fuzz server did not start")
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30 * TIME_FACTOR)
        loop.close()


def make_app(*transports: Any) -> Application:
    return create_app(FuzzModule, transports=list(transports))

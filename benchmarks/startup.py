"""Start-up time of an app with many generated modules.

Each module has two providers (one depending on the other and on the previous module's
exported service), a controller with an HTTP route, a message handler and an event
handler. Measures ``create_app`` + ``start`` (graph scan, checks, instantiation, router and
route compilation) and ``stop``.

Run: ``python -m benchmarks.startup [modules]``. Target: 200 modules start in < 0.5 s.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from pydantic import BaseModel

from framework import (
    controller,
    create_app,
    event_pattern,
    get,
    injectable,
    message_pattern,
    module,
)


class Payload(BaseModel):
    id: int
    name: str


def make_module(i: int, previous: Any) -> tuple[Any, type]:
    @injectable()
    class Repo:
        pass

    imports = [previous[0]] if previous else []
    prev_service: type | None = previous[1] if previous else None

    @injectable()
    class Service:
        def __init__(self, repo: Repo, upstream: Any = None) -> None:
            self.repo = repo
            self.upstream = upstream

    if prev_service is not None:
        Service.__init__.__annotations__["upstream"] = prev_service

    Service.__init__.__annotations__["repo"] = Repo

    @controller(f"/m{i}")
    class Controller:
        def __init__(self, service: Service) -> None:
            self.service = service

        @get("/{item_id}")
        async def read(self, item_id: int) -> dict[str, int]:
            return {"id": item_id}

        @message_pattern(f"m{i}.get")
        async def get_item(self, payload: Payload) -> Payload:
            return payload

        @event_pattern(f"m{i}.changed")
        async def changed(self, payload: Payload) -> None:
            return None

    Controller.__init__.__annotations__["service"] = Service
    Controller.read.__annotations__["return"] = dict
    mod = module(
        imports=imports, controllers=[Controller], providers=[Repo, Service], exports=[Service]
    )(type(f"Module{i}", (), {}))
    return mod, Service


def build(n: int) -> Any:
    previous = None
    modules = []
    for i in range(n):
        previous = make_module(i, previous)
        modules.append(previous[0])
    return module(imports=modules)(type("AppModule", (), {}))


async def main(n: int) -> bool:
    root = build(n)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        app = create_app(root)
        await app.start()
        elapsed = time.perf_counter() - start
        handlers = len(app.router.handlers)
        await app.stop()
        best = min(best, elapsed)
    ok = best < 0.5
    print(f"startup: {n} modules, {handlers} handlers: {best * 1000:.0f} ms (target < 500 ms)")
    print("startup:", "OK" if ok else "ABOVE TARGET")
    return ok


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))

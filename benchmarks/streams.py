"""Stream items per second: an Observable handler against an async-generator handler.

Both handlers stream the same ``N`` small dicts; a client reads them all:

- memory: ``app.client.stream(...)`` (the driver into the in-memory client's buffer);
- ws: a ``WebSocketClient`` against a standalone ``WebSocketTransport``, one process.

The Observable is ``from_iterable`` behind a bridge buffer that holds the whole burst
(it emits everything at once: a push source cannot wait for the reader), so this measures
the bridge's cost per item, not an overflow. A bare loop (the generator's items encoded
and decoded, no framework) is printed for scale.

Run: ``python benchmarks/streams.py [items]``. Target: Observable >= 0.7x async generator
on each transport.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import reactivex

from benchmarks._util import best_rate, report
from framework import ClientProxy, controller, create_app, message_pattern, module
from framework.messaging.codecs import decode, encode
from framework.rx import from_observable
from framework.transports.websocket import WebSocketClient, WebSocketTransport


def items(n: int) -> list[dict[str, int]]:
    return [{"i": i, "total": i * 2} for i in range(n)]


async def generate(n: int) -> AsyncIterator[dict[str, int]]:
    for item in items(n):
        yield item


@controller()
class StreamsController:
    @message_pattern("gen")
    async def gen(self, n: int) -> AsyncIterator[dict[str, int]]:
        for item in items(n):
            yield item

    @message_pattern("rx")
    async def rx(self, n: int) -> Any:
        return from_observable(reactivex.from_iterable(items(n)), buffer_size=max(n, 1))


@module(controllers=[StreamsController])
class StreamsModule:
    pass


async def read_all(client: ClientProxy, pattern: str, n: int) -> int:
    count = 0
    async for _ in client.stream(pattern, n, timeout=60):
        count += 1
    assert count == n, (pattern, count)
    return count


async def bare(n: int) -> int:
    count = 0
    async for item in generate(n):
        decode(encode(item))
        count += 1
    return count


async def compare(name: str, client: ClientProxy, n: int) -> bool:
    gen = await best_rate(lambda: read_all(client, "gen", n), repeats=3)
    rx = await best_rate(lambda: read_all(client, "rx", n), repeats=3)
    return report(f"streams ({name}, Observable vs async generator)", rx, gen, 0.7, "items/s")


async def main(n: int) -> int:
    ok = True
    print(
        f"bare loop (encode + decode): {await best_rate(lambda: bare(n), repeats=3):,.0f} items/s"
    )
    async with create_app(StreamsModule) as app:
        ok &= await compare("memory", app.client, n)
    transport = WebSocketTransport("/ws", port=0)
    async with create_app(StreamsModule, transports=[transport]):
        url = f"ws://127.0.0.1:{transport.bound_port}/ws"
        # The client buffers what the server pushes ahead of the reader: room for it all.
        async with WebSocketClient(url, stream_buffer=n + 1) as client:
            ok &= await compare("ws", client, n)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))

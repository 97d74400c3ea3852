"""A consume-transform-produce app for the exactly-once tests, run as a process.

``python -m tests.transports.kafka.eos_app BOOTSTRAP IN OUT GROUP MODE [window]``

Every ``{"id": n}`` read from IN is produced to OUT as ``{"id": n, "doubled": 2n}``,
keyed like its input; with ``window``, records are counted per key in 1 s tumbling
windows instead, and each closed window is produced to OUT. MODE is ``eos``
(``exactly_once=True``) or ``alo`` (at least once). Offsets are committed rarely in
``alo`` mode (every 30 s or on a graceful stop), so a SIGKILL always replays what was
produced since the last commit: the duplicates the ``eos`` mode must not have. Prints
``ready`` once serving; SIGTERM stops it gracefully.
"""

# No ``from __future__ import annotations``: the local classes' hints must resolve.
import asyncio
import signal
import sys
from typing import Any

from framework import controller, create_app, event_pattern, module
from framework.transports.kafka import KafkaTransport, TumblingWindow

WORK = 0.0005
"""Seconds of work per record, so that kills land mid-stream."""


def main() -> None:
    bootstrap, source, out, group, mode = sys.argv[1:6]
    windowed = sys.argv[6:] == ["window"]

    @controller()
    class Doubler:
        @event_pattern(source, emits=out)
        async def double(self, record: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(WORK)
            return {"id": record["id"], "doubled": 2 * record["id"]}

    @controller()
    class Counter:
        @event_pattern(source, emits=out, window=TumblingWindow(1.0))
        async def count(self, record: dict[str, Any]) -> int:
            await asyncio.sleep(WORK)
            return 1

    @module(controllers=[Counter if windowed else Doubler])
    class EosApp:
        pass

    transport = KafkaTransport(
        bootstrap_servers=bootstrap,
        group_id=group,
        exactly_once=mode == "eos",
        auto_offset_reset="earliest",
        commit_every=1_000_000,
        commit_interval=30.0,
        max_batch_size=50,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        shutdown_timeout=10.0,
    )

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with create_app(EosApp, transports=[transport]):
            print("ready", flush=True)
            await stop.wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()

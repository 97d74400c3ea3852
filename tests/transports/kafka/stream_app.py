"""A Kafka app with an inbound-stream handler, for the crash tests, run as a process.

``python -m tests.transports.kafka.stream_app BOOTSTRAP TOPIC GROUP OUT [DELAY]``

The handler reads its partition's stream of ``{"id": n}`` records through 0.3 s
tumbling windows of at most 25 records; each window it finishes is appended to OUT as
one line of ids (flushed before the handler pulls the next window, so it survives
SIGKILL), after DELAY seconds of work per record. Prints ``ready`` once serving;
SIGTERM stops it gracefully.
"""

# No ``from __future__ import annotations``: the local classes' hints must resolve.
import asyncio
import sys
from collections.abc import AsyncIterator

from pydantic import BaseModel

from framework import controller, event_pattern, module
from framework.inbound import tumbling
from framework.transports.kafka import KafkaTransport
from tests.transports.kafka.consumer_app import serve

WINDOW = 0.3
"""Seconds per window."""
MAX_WINDOW = 25
"""Records per window at most (what is fetched arrives at once: without a bound, one
window would take all of it)."""


class Tick(BaseModel):
    id: int


def main() -> None:
    bootstrap, topic, group, out = sys.argv[1:5]
    delay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    sink = open(out, "a", buffering=1)  # noqa: SIM115 - kept open for the process's life

    @controller()
    class Windows:
        @event_pattern(topic)
        async def on_ticks(self, ticks: AsyncIterator[Tick]) -> None:
            async for window in tumbling(ticks, seconds=WINDOW, max_size=MAX_WINDOW):
                if delay:
                    await asyncio.sleep(delay * len(window.items))
                sink.write(" ".join(str(t.id) for t in window.items) + "\n")
                sink.flush()

    @module(controllers=[Windows])
    class StreamApp:
        pass

    transport = KafkaTransport(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        commit_every=20,
        commit_interval=0.2,
        max_batch_size=20,
        max_pending_batches=2,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        shutdown_timeout=10.0,
    )

    serve(StreamApp, transport)


if __name__ == "__main__":
    main()

"""A Kafka consumer app for the reliability tests, run as a separate process.

``python -m tests.transports.kafka.consumer_app BOOTSTRAP TOPIC GROUP OUT [DELAY [ENGINE]]``

Each handled record's id is appended to OUT (one line per call, flushed before the
handler returns, so it survives SIGKILL); DELAY seconds of work per record. Prints
``ready`` once the app is serving; SIGTERM stops it gracefully.
"""

# No ``from __future__ import annotations``: the local classes' hints must resolve.
import asyncio
import signal
import sys
from typing import Any

from framework import controller, create_app, event_pattern, injectable, module
from framework.transports.kafka import KafkaTransport

# Small batches and frequent commits keep the at-least-once window (and so the
# duplicates a crash may cause) small and easy to bound in the tests.
COMMIT_EVERY = 50
MAX_BATCH = 20
MAX_PENDING = 2


def main() -> None:
    bootstrap, topic, group, out = sys.argv[1:5]
    delay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    engine: Any = sys.argv[6] if len(sys.argv) > 6 else "aiokafka"
    sink = open(out, "a", buffering=1)  # noqa: SIM115 - kept open for the process's life

    @injectable()
    class Sink:
        def write(self, record_id: int) -> None:
            sink.write(f"{record_id}\n")
            sink.flush()

    @controller()
    class Records:
        def __init__(self, out: Sink) -> None:
            self.out = out

        @event_pattern(topic)
        async def on_record(self, record: dict[str, Any]) -> None:
            if delay:
                await asyncio.sleep(delay)
            self.out.write(record["id"])

    @module(controllers=[Records], providers=[Sink])
    class ConsumerApp:
        pass

    transport = KafkaTransport(
        bootstrap_servers=bootstrap,
        engine=engine,
        group_id=group,
        auto_offset_reset="earliest",
        commit_every=COMMIT_EVERY,
        commit_interval=0.5,
        max_batch_size=MAX_BATCH,
        max_pending_batches=MAX_PENDING,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        shutdown_timeout=10.0,
    )

    serve(ConsumerApp, transport)


def serve(root_module: type, transport: KafkaTransport) -> None:
    """Run the app until SIGTERM (a graceful stop); print ``ready`` once it serves."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with create_app(root_module, transports=[transport]):
            print("ready", flush=True)
            await stop.wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()

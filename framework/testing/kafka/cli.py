"""The command line: run a local broker until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from framework.testing.kafka.broker import LocalKafkaBroker
from framework.testing.kafka.errors import BOOTSTRAP_ENV_VAR, KafkaBrokerError
from framework.testing.kafka.jars import ensure_kafka_jars, kafka_version

__all__ = ["fetch", "main"]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fetch(argv: Sequence[str] | None = None) -> int:
    """Resolve the broker jars into the cache now and print their folder (for image
    builds: ``framework kafka fetch`` in a Dockerfile, then no Maven run at start).

    Returns:
        0, or 1 if Maven failed (the error is printed).
    """
    parser = argparse.ArgumentParser(
        prog="framework kafka fetch",
        description="Download the Apache Kafka broker jars with Maven into the cache "
        "($FRAMEWORK_CACHE_DIR or ~/.cache/framework) and print their folder.",
    )
    parser.parse_args(argv)
    try:
        libs = ensure_kafka_jars(progress=_say)
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(libs, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run a local Kafka broker until Ctrl-C or SIGTERM (``python -m framework.testing.kafka``).

    If ``$KAFKA_BOOTSTRAP_SERVERS`` is set, prints it and starts nothing.

    Args:
        argv: Command-line arguments without the program name; ``None`` uses ``sys.argv``.

    Returns:
        The process exit code: 0 after a clean stop, 1 if the broker failed, 130 if
        interrupted during start-up.
    """
    parser = argparse.ArgumentParser(
        prog="python -m framework.testing.kafka",
        description="Start a local single-node Apache Kafka broker (KRaft) for development.",
    )
    parser.add_argument("--port", type=int, default=None, help="client port (default: free)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument(
        "--startup-timeout", type=float, default=90.0, help="seconds to wait (default 90)"
    )
    parser.add_argument("--heap", default="-Xms256m -Xmx512m", help="JVM heap flags")
    args = parser.parse_args(argv)

    existing = os.environ.get(BOOTSTRAP_ENV_VAR)
    if existing:
        print(f"{BOOTSTRAP_ENV_VAR}={existing}", flush=True)
        print(
            f"Using the existing Kafka cluster from ${BOOTSTRAP_ENV_VAR}; not starting one.",
            file=sys.stderr,
        )
        return 0

    stop_requested = threading.Event()
    ready = False

    def on_signal(signum: int, _frame: object) -> None:
        if ready:
            stop_requested.set()
        else:  # abort start-up; start() cleans up on the way out
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    broker = LocalKafkaBroker(
        host=args.host, port=args.port, heap=args.heap, startup_timeout=args.startup_timeout
    )
    try:
        print(f"Starting Apache Kafka {kafka_version()}...", file=sys.stderr, flush=True)
        try:
            # First run: Maven resolves the jars, telling what it fetches (broker.start()
            # then finds them cached).
            ensure_kafka_jars(broker.cache_dir, mvn=broker.mvn, progress=_say)
            broker.start()
        except KafkaBrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("Interrupted during start-up.", file=sys.stderr)
            return 130
        ready = True
        print(f"{BOOTSTRAP_ENV_VAR}={broker.bootstrap_servers}", flush=True)
        print(
            f"Kafka ready in {broker.last_start_seconds or 0.0:.1f} s (pid {broker.pid}, "
            f"log {broker.log_file}). Press Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        while not stop_requested.wait(0.5):
            if not broker.is_running():
                print(f"error: Kafka broker exited; {broker._failure_report()}", file=sys.stderr)
                return 1
        print("Stopping Kafka...", file=sys.stderr, flush=True)
        return 0
    finally:
        ready = False
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

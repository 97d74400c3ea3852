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
from framework.testing.kafka.security import (
    SASL_MECHANISMS,
    SECURE_PROTOCOLS,
    normalize_protocols,
)

__all__ = ["client_settings", "fetch", "main"]


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


def client_settings(broker: LocalKafkaBroker, protocol: str | None = None) -> list[str]:
    """``NAME=value`` lines telling a client how to connect (a shell can source them).

    Without security: ``KAFKA_BOOTSTRAP_SERVERS``. With it, that names the secured
    listener (*protocol*, or the broker's first), and ``KAFKA_SECURITY_PROTOCOL``,
    ``KAFKA_SSL_CA_FILE`` (TLS), ``KAFKA_SASL_MECHANISM`` (SCRAM-SHA-512; the listener
    also takes PLAIN and SCRAM-SHA-256), ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``
    (SASL) and ``KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS`` (the plain
    listener, for tools) follow.
    """
    if not broker.security:
        return [f"{BOOTSTRAP_ENV_VAR}={broker.bootstrap_servers}"]
    protocol = normalize_protocols(protocol)[0] if protocol else broker.security[0]
    lines = [
        f"{BOOTSTRAP_ENV_VAR}={broker.secure_bootstrap_servers(protocol)}",
        f"KAFKA_SECURITY_PROTOCOL={protocol}",
    ]
    if protocol.endswith("SSL"):
        lines.append(f"KAFKA_SSL_CA_FILE={broker.ca_file}")
    if protocol.startswith("SASL_"):
        lines += [
            f"KAFKA_SASL_MECHANISM={SASL_MECHANISMS[-1]}",
            f"KAFKA_SASL_USERNAME={broker.sasl_username}",
            f"KAFKA_SASL_PASSWORD={broker.sasl_password}",
        ]
    lines.append(f"KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run a local Kafka broker until Ctrl-C or SIGTERM (``python -m framework.testing.kafka``).

    If ``$KAFKA_BOOTSTRAP_SERVERS`` is set (and no ``--security``), prints it and
    starts nothing. With
    ``--security``, the broker gets a listener of that protocol and the lines printed
    are what a client needs (bootstrap of that listener, protocol, CA file, SASL
    mechanisms, user and password).

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
    parser.add_argument(
        "--security",
        choices=[p.lower() for p in SECURE_PROTOCOLS],
        default=None,
        help="add a listener that requires TLS, SASL or both (certificates made with "
        "keytool; SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512)",
    )
    parser.add_argument("--sasl-username", default="framework", help="SASL user")
    parser.add_argument(
        "--sasl-password", default=None, help="SASL password (default: a random one)"
    )
    args = parser.parse_args(argv)

    existing = os.environ.get(BOOTSTRAP_ENV_VAR)
    # A secured broker is always started: the existing cluster's security is unknown.
    if existing and args.security is None:
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

    try:
        broker = LocalKafkaBroker(
            host=args.host,
            port=args.port,
            heap=args.heap,
            startup_timeout=args.startup_timeout,
            security=args.security,
            sasl_username=args.sasl_username,
            sasl_password=args.sasl_password,
        )
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
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
        for line in client_settings(broker):
            print(line, flush=True)
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

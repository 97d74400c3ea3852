"""Prepare one KRaft node: free ports, ``server.properties`` and formatted storage."""

from __future__ import annotations

import base64
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from framework.testing.kafka.process import run_tool

__all__ = ["NODE_ID", "format_storage", "free_port", "random_cluster_id", "server_properties"]

NODE_ID = 1
"""The node id of the single broker + controller."""


def free_port(host: str) -> int:
    """Return a TCP port on *host* that is free now (another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def random_cluster_id() -> str:
    """Return a new KRaft cluster id."""
    # Same format as org.apache.kafka.common.Uuid.randomUuid(): URL-safe base64 of
    # 16 random bytes without padding, never starting with "-".
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def server_properties(
    *,
    host: str,
    port: int,
    controller_port: int,
    data_dir: Path,
    session_timeout: float,
    secure_listeners: Sequence[str] = (),
    extra_properties: Mapping[str, str],
) -> str:
    """Return the ``server.properties`` text of a single node tuned for tests.

    Args:
        host: Address to listen on and advertise.
        port: Client (PLAINTEXT) port.
        controller_port: KRaft controller port.
        data_dir: Folder whose ``kafka-logs`` subfolder holds the Kafka data.
        session_timeout: KRaft broker session timeout, in seconds (at least 1 s is used).
        secure_listeners: Further ``NAME://host:port`` listeners, each named after its
            security protocol (``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``); their TLS and
            SASL settings come in *extra_properties*.
        extra_properties: Entries that override the defaults.
    """
    session_ms = max(1000, int(session_timeout * 1000))
    secure = list(secure_listeners)
    names = ["PLAINTEXT", "CONTROLLER", *(listener.split("://", 1)[0] for listener in secure)]
    heartbeat_ms = max(100, min(500, session_ms // 4))
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{host}:{controller_port}",
        "listeners": ",".join(
            [f"PLAINTEXT://{host}:{port}", f"CONTROLLER://{host}:{controller_port}", *secure]
        ),
        "advertised.listeners": ",".join([f"PLAINTEXT://{host}:{port}", *secure]),
        "listener.security.protocol.map": ",".join(
            f"{name}:{'PLAINTEXT' if name == 'CONTROLLER' else name}" for name in names
        ),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir / "kafka-logs"),
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "2",
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Kafka requires strictly more than 1 MiB per cleaner thread.
        "log.cleaner.dedupe.buffer.size": str(2 * 1024 * 1024),
        "broker.session.timeout.ms": str(session_ms),
        "broker.heartbeat.interval.ms": str(heartbeat_ms),
    }
    props.update(extra_properties)
    header = "# Written by framework.testing.kafka.LocalKafkaBroker\n"
    return header + "".join(f"{k}={v}\n" for k, v in props.items())


def format_storage(
    *,
    java: str,
    classpath: str,
    data_dir: Path,
    deadline: float,
    extra_args: Sequence[str] = (),
) -> None:
    """Format fresh KRaft storage for ``<data_dir>/server.properties`` with a new cluster id.

    Args:
        java: Java 17+ executable name or path.
        classpath: The ``java -cp`` value naming the Kafka jars.
        data_dir: Folder holding ``server.properties``; the tool runs there.
        deadline: :func:`time.monotonic` value to finish by (at least 1 s is allowed).
        extra_args: Further ``format`` arguments (``--add-scram ...``).

    Raises:
        KafkaBrokerError: If the tool cannot run, fails or times out; the message names
            the command and ends with the tail of its output.
    """
    cmd = [
        java,
        # Keep the error visible: do not bury it under the ~400-line config dump.
        "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config.AbstractConfig=warn",
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        random_cluster_id(),
        "-c",
        str(data_dir / "server.properties"),
        *extra_args,
    ]
    timeout = max(1.0, deadline - time.monotonic())
    run_tool(cmd, what="formatting Kafka storage", cwd=data_dir, timeout=timeout)

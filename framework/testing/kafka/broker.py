"""Start a real Apache Kafka 4.x broker (one KRaft node) from jars resolved by Maven.

The broker is the official ``org.apache.kafka:kafka_2.13`` artifact from Maven Central,
resolved once by ``mvn`` into a cache folder, then run with ``java`` as a child process:
one node that is both broker and controller, listening on ``127.0.0.1`` only, with
replication factors of 1 and start-up settings tuned for tests.

Typical use::

    with LocalKafkaBroker() as broker:
        print(broker.bootstrap_servers)  # "127.0.0.1:<port>"

Requirements: ``java`` 17+ and ``mvn`` on ``PATH`` (or passed in), network access to
Maven Central for the first resolution, and ``aiokafka`` for the readiness probe.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

__all__ = [
    "BOOTSTRAP_ENV_VAR",
    "CACHE_DIR_ENV_VAR",
    "KafkaBrokerError",
    "LocalKafkaBroker",
    "default_cache_root",
    "ensure_kafka_jars",
    "kafka_version",
    "main",
]

BOOTSTRAP_ENV_VAR = "KAFKA_BOOTSTRAP_SERVERS"
"""If set, tools use this existing cluster instead of starting a local broker."""

CACHE_DIR_ENV_VAR = "FRAMEWORK_CACHE_DIR"
"""Root folder of the jar cache (default ``~/.cache/framework``)."""

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_POM_NAME = "pom.xml"
_MARKER_NAME = ".complete"
_NODE_ID = 1
_LOG_TAIL_LINES = 60
_T = TypeVar("_T")


class KafkaBrokerError(RuntimeError):
    """Resolving, formatting, starting or stopping the local Kafka broker failed."""


# --------------------------------------------------------------------------- jars


def _pom_bytes() -> bytes:
    return (
        resources.files(__package__ or "framework.testing.kafka").joinpath(_POM_NAME).read_bytes()
    )


def kafka_version() -> str:
    """Return the ``kafka_2.13`` version pinned in the bundled ``pom.xml``.

    Returns:
        The Kafka version string, for example ``"4.1.1"``.

    Raises:
        KafkaBrokerError: If the bundled pom does not list ``org.apache.kafka:kafka_2.13``.
    """
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(_pom_bytes())
    for dep in root.iterfind("m:dependencies/m:dependency", ns):
        if (
            dep.findtext("m:groupId", namespaces=ns) == "org.apache.kafka"
            and dep.findtext("m:artifactId", namespaces=ns) == "kafka_2.13"
        ):
            version = dep.findtext("m:version", namespaces=ns)
            if version:
                return version.strip()
    raise KafkaBrokerError("bundled pom.xml does not pin org.apache.kafka:kafka_2.13")


def default_cache_root() -> Path:
    """Return the root of the jar cache.

    Returns:
        ``$FRAMEWORK_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/framework``, else
        ``~/.cache/framework``. Jars go to ``<root>/kafka-<version>/libs``.
    """
    explicit = os.environ.get(CACHE_DIR_ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "framework"


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _read_tail(path: Path, lines: int = _LOG_TAIL_LINES, max_bytes: int = 64_000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return _tail(data.decode("utf-8", "replace"), lines)


def _error_lines(path: Path, limit: int = 12) -> str:
    """Return the first ERROR/FATAL/exception lines of a broker log, deduplicated."""
    seen: list[str] = []
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                text = line.rstrip()
                if (
                    " ERROR " in text
                    or " FATAL " in text
                    or text.startswith("Caused by:")
                    or ("Exception" in text and not text.startswith("\tat "))
                ) and text not in seen:
                    seen.append(text)
                    if len(seen) >= limit:
                        break
    except OSError:
        return ""
    return "\n".join(seen)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on *path* (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_kafka_jars(
    cache_dir: Path | None = None,
    *,
    mvn: str = "mvn",
    timeout: float = 900.0,
) -> Path:
    """Resolve the Kafka broker jars with Maven into a cache folder, once.

    Runs ``mvn -B -q maven-dependency-plugin:3.8.1:copy-dependencies
    -DincludeScope=runtime`` on the bundled ``pom.xml``. A marker file holding the pom's
    SHA-256 records a complete resolution; later calls return at once. Concurrent callers
    (for example pytest-xdist workers) serialise on a lock file.

    Args:
        cache_dir: Cache root; jars go to ``<cache_dir>/kafka-<version>/libs``. Defaults
            to :func:`default_cache_root` (``$FRAMEWORK_CACHE_DIR`` or
            ``~/.cache/framework``).
        mvn: Maven executable name or path.
        timeout: Limit for the Maven run, in seconds (default 900 s; a cold resolution
            of the ~43 MB of jars usually takes well under a minute).

    Returns:
        The folder holding the jars, suitable for ``java -cp '<folder>/*'``.

    Raises:
        KafkaBrokerError: If Maven is missing, fails or times out; the message names the
            command and ends with the tail of its output.
    """
    version = kafka_version()
    pom = _pom_bytes()
    digest = hashlib.sha256(pom).hexdigest()
    home = (cache_dir if cache_dir is not None else default_cache_root()) / f"kafka-{version}"
    libs = home / "libs"
    marker = libs / _MARKER_NAME

    def complete() -> bool:
        try:
            return marker.read_text().strip() == digest and any(libs.glob("kafka_2.13-*.jar"))
        except OSError:
            return False

    if complete():
        return libs
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise KafkaBrokerError(
            f"Maven executable {mvn!r} not found on PATH; install Maven 3.6+ "
            f"(or set {BOOTSTRAP_ENV_VAR} to use an existing Kafka cluster)"
        )
    with _file_lock(home.parent / f"kafka-{version}.lock"):
        if complete():
            return libs
        home.mkdir(parents=True, exist_ok=True)
        pom_path = home / _POM_NAME
        pom_path.write_bytes(pom)
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=home))
        cmd = [
            mvn_path,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(pom_path),
            f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        try:
            try:
                proc = subprocess.run(
                    cmd,
                    cwd=home,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                out = exc.output.decode("utf-8", "replace") if exc.output else ""
                raise KafkaBrokerError(
                    f"Maven timed out after {timeout:g} s: {shlex.join(cmd)}\n{_tail(out)}"
                ) from exc
            except OSError as exc:
                raise KafkaBrokerError(f"cannot run {shlex.join(cmd)}: {exc}") from exc
            out = proc.stdout.decode("utf-8", "replace")
            if proc.returncode != 0:
                raise KafkaBrokerError(
                    f"Maven failed with exit code {proc.returncode}: {shlex.join(cmd)}\n"
                    f"{_tail(out)}"
                )
            if not any(staging.glob("kafka_2.13-*.jar")):
                raise KafkaBrokerError(
                    f"Maven succeeded but produced no kafka_2.13 jar: {shlex.join(cmd)}\n"
                    f"{_tail(out)}"
                )
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
            marker.write_text(digest + "\n")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return libs


# ------------------------------------------------------------------------- broker


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _random_cluster_id() -> str:
    # Same format as org.apache.kafka.common.Uuid.randomUuid(): URL-safe base64 of
    # 16 random bytes without padding, never starting with "-".
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _run_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run *coro* in a fresh event loop, on a helper thread if a loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: list[_T] = []
    err: list[BaseException] = []

    def target() -> None:
        try:
            box.append(asyncio.run(coro))
        except BaseException as exc:
            err.append(exc)

    thread = threading.Thread(target=target, name="kafka-broker-probe", daemon=True)
    thread.start()
    thread.join()
    if err:
        raise err[0]
    return box[0]


async def _probe_metadata(host: str, port: int, node_id: int, limit: float) -> str | None:
    """Send one Metadata request; return ``None`` if the broker serves, else a reason."""
    from aiokafka.conn import create_conn  # type: ignore[import-untyped]
    from aiokafka.protocol.metadata import MetadataRequest  # type: ignore[import-untyped]

    try:
        async with asyncio.timeout(limit):
            conn = await create_conn(host, port, request_timeout_ms=int(limit * 1000))
            try:
                resp = await conn.send(MetadataRequest(None))
            finally:
                conn.close()
    except Exception as exc:  # refused, reset, timeout, protocol error: not ready yet
        return f"metadata request failed: {type(exc).__name__}: {exc}"
    broker_ids = {int(b[0]) for b in resp.brokers}
    if node_id not in broker_ids:
        return f"broker {node_id} not in metadata yet (brokers={sorted(broker_ids)})"
    api_version = int(resp.API_VERSION)
    for topic_data in resp.topics:
        error_code, topic = int(topic_data[0]), str(topic_data[1])
        partitions = topic_data[3] if api_version >= 1 else topic_data[2]
        if error_code != 0:
            return f"topic {topic!r} has error code {error_code}"
        for part in partitions:
            if int(part[2]) < 0:
                return f"partition {topic}-{part[1]} has no leader yet"
    return None


# Strong references: a broker object dropped without stop() still gets stopped at exit.
_LIVE_BROKERS: set[LocalKafkaBroker] = set()


def _kill_live_brokers() -> None:
    for broker in list(_LIVE_BROKERS):
        with contextlib.suppress(Exception):
            broker.stop()


atexit.register(_kill_live_brokers)


class LocalKafkaBroker:
    """A single-node Apache Kafka 4.x (KRaft, broker + controller) child process.

    The node listens on ``PLAINTEXT://<host>:<port>`` for clients and on a second port
    for its controller. Data lives in a temporary folder (or *data_dir*) so that
    :meth:`kill` + :meth:`restart` keep what was written. :meth:`start` returns only
    after a real Metadata round trip shows the broker registered and every existing
    partition with a leader.

    The broker runs in its own process group, so Ctrl-C in a terminal reaches Python
    only; :meth:`stop` (or the context manager, or an ``atexit`` hook) ends it. A parent
    killed with SIGKILL leaves the broker running: find it with ``pgrep -f kafka.Kafka``.

    Args:
        host: Address to listen on and advertise.
        port: Client (PLAINTEXT) port; ``None`` picks a free one.
        controller_port: KRaft controller port; ``None`` picks a free one.
        heap: JVM heap flags, split with :func:`shlex.split`.
        jvm_args: Further JVM flags (default: C1 only, for a fast start).
        startup_timeout: Limit for formatting plus start until ready, in seconds (jar
            resolution by :func:`ensure_kafka_jars` is not counted).
        stop_timeout: Time between SIGTERM and SIGKILL in :meth:`stop`, in seconds.
        port_retries: Extra start attempts with new ports when a port this object picked
            was taken by someone else before the broker bound it (count).
        session_timeout: KRaft broker session timeout, in seconds. After :meth:`kill`,
            the restarted broker waits this long for its old registration to expire
            (Kafka's default is 9 s; 3 s keeps restarts quick).
        probe_interval: Pause between readiness probes, in seconds.
        probe_timeout: Limit for one readiness probe (connect + Metadata), in seconds.
        data_dir: Folder for ``server.properties``, the log and the Kafka data. It must be
            empty or missing; ``None`` creates a temporary folder. Only a temporary folder
            is deleted by :meth:`stop`.
        log_file: Broker stdout/stderr; default ``<data_dir>/broker.log`` (appended).
        cache_dir: Jar cache root, see :func:`ensure_kafka_jars`.
        java: Java 17+ executable name or path.
        mvn: Maven executable name or path.
        log_level: slf4j-simple level of the broker log (``trace`` ... ``error``).
        extra_properties: ``server.properties`` entries that override the defaults.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "-Xms256m -Xmx512m",
        jvm_args: Sequence[str] = ("-XX:TieredStopAtLevel=1",),
        startup_timeout: float = 90.0,
        stop_timeout: float = 15.0,
        port_retries: int = 2,
        session_timeout: float = 3.0,
        probe_interval: float = 0.2,
        probe_timeout: float = 2.0,
        data_dir: str | os.PathLike[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        cache_dir: Path | None = None,
        java: str = "java",
        mvn: str = "mvn",
        log_level: str = "info",
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._controller_port = controller_port
        self._initial_port = port
        self._initial_controller_port = controller_port
        self.port_retries = port_retries
        self.heap = heap
        self.jvm_args = tuple(jvm_args)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.session_timeout = session_timeout
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self._requested_data_dir = Path(data_dir) if data_dir is not None else None
        self._requested_log_file = Path(log_file) if log_file is not None else None
        self.cache_dir = cache_dir
        self.java = java
        self.mvn = mvn
        self.log_level = log_level
        self.extra_properties = dict(extra_properties or {})
        self._data_dir: Path | None = None
        self._owns_data_dir = False
        self._libs: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.last_start_seconds: float | None = None
        """Seconds the last successful :meth:`start`/:meth:`restart` took (jars excluded)."""

    # -- properties ----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The client port (fixed by the first :meth:`start`)."""
        if self._port is None:
            raise KafkaBrokerError("broker not started: no port chosen yet")
        return self._port

    @property
    def controller_port(self) -> int:
        """The KRaft controller port (fixed by the first :meth:`start`)."""
        if self._controller_port is None:
            raise KafkaBrokerError("broker not started: no controller port chosen yet")
        return self._controller_port

    @property
    def bootstrap_servers(self) -> str:
        """Client bootstrap string, ``"<host>:<port>"``."""
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path | None:
        """Folder holding ``server.properties``, the broker log and the Kafka data."""
        return self._data_dir

    @property
    def log_file(self) -> Path | None:
        """Broker stdout/stderr log file."""
        if self._requested_log_file is not None:
            return self._requested_log_file
        return self._data_dir / "broker.log" if self._data_dir is not None else None

    @property
    def pid(self) -> int | None:
        """Process id of the running broker JVM, or ``None``."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        """Return whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Resolve jars, format fresh storage, launch the broker and wait until it serves.

        Returns:
            This broker, started.

        Raises:
            KafkaBrokerError: If anything fails or readiness is not reached within
                ``startup_timeout``; the message ends with the tail of the broker log.
                The process and a temporary data folder are cleaned up first.
        """
        if self.is_running():
            raise KafkaBrokerError(f"broker already running on {self.bootstrap_servers}")
        self._libs = ensure_kafka_jars(self.cache_dir, mvn=self.mvn)
        self._check_tools()
        started = time.monotonic()
        deadline = started + self.startup_timeout
        attempt = 0
        while True:
            attempt += 1
            auto_ports = self._pick_ports()
            self._prepare_data_dir()
            try:
                self._format_storage(deadline)
                self._launch()
                self._wait_ready(deadline)
            except KafkaBrokerError as exc:
                self.stop()
                # A free port picked by us can be taken before the JVM binds it: retry.
                retry = (
                    auto_ports and self._requested_data_dir is None and attempt <= self.port_retries
                )
                if not (retry and "Address already in use" in str(exc)):
                    raise
                self._port = self._initial_port
                self._controller_port = self._initial_controller_port
                continue
            except BaseException:
                self.stop()
                raise
            break
        self.last_start_seconds = time.monotonic() - started
        return self

    def _pick_ports(self) -> bool:
        """Choose free ports where none were given; return whether any was chosen here."""
        chosen = False
        if self._port is None:
            self._port = _free_port(self.host)
            chosen = True
        if self._controller_port is None:
            self._controller_port = _free_port(self.host)
            while self._controller_port == self._port:
                self._controller_port = _free_port(self.host)
            chosen = True
        return chosen

    def restart(self) -> Self:
        """Start the broker again on the same ports and data folder.

        A running broker is stopped gracefully first (data kept). Use after :meth:`kill`
        to simulate a crash and recovery.

        Returns:
            This broker, running again.

        Raises:
            KafkaBrokerError: If the broker was never started or was stopped (data
                removed), or if it is not ready within ``startup_timeout``.
        """
        if self._data_dir is None or self._libs is None:
            raise KafkaBrokerError("restart() needs a broker started before and not stopped")
        if self.is_running():
            self._terminate(graceful=True)
        started = time.monotonic()
        self._launch()
        try:
            self._wait_ready(started + self.startup_timeout)
        except BaseException:
            self._terminate(graceful=False)
            raise
        self.last_start_seconds = time.monotonic() - started
        return self

    def kill(self) -> None:
        """SIGKILL the broker process group (a crash); keep the data for :meth:`restart`."""
        self._terminate(graceful=False)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``stop_timeout``) and clean up.

        Removes the data folder if this object created it. Safe to call repeatedly.
        """
        try:
            self._terminate(graceful=True)
        finally:
            _LIVE_BROKERS.discard(self)
            if self._data_dir is not None and self._owns_data_dir:
                shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None
            self._owns_data_dir = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        where = f"{self.host}:{self._port}" if self._port is not None else self.host
        return f"<LocalKafkaBroker {where} {state}>"

    # -- helpers -------------------------------------------------------------------

    def _check_tools(self) -> None:
        try:
            import aiokafka  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as exc:
            raise KafkaBrokerError(
                "aiokafka is needed to check that the broker is ready: pip install aiokafka"
            ) from exc
        if shutil.which(self.java) is None:
            raise KafkaBrokerError(
                f"Java executable {self.java!r} not found on PATH; Kafka 4.x needs Java 17+ "
                f"(or set {BOOTSTRAP_ENV_VAR} to use an existing Kafka cluster)"
            )

    def _prepare_data_dir(self) -> None:
        if self._requested_data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="framework-kafka-"))
            self._owns_data_dir = True
        else:
            path = self._requested_data_dir
            if path.exists() and any(path.iterdir()):
                raise KafkaBrokerError(f"data_dir {path} is not empty; Kafka needs fresh storage")
            path.mkdir(parents=True, exist_ok=True)
            self._data_dir = path
            self._owns_data_dir = False
        (self._data_dir / "server.properties").write_text(self._server_properties())

    def _server_properties(self) -> str:
        assert self._data_dir is not None
        session_ms = max(1000, int(self.session_timeout * 1000))
        heartbeat_ms = max(100, min(500, session_ms // 4))
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(_NODE_ID),
            "controller.quorum.voters": f"{_NODE_ID}@{self.host}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self._data_dir / "kafka-logs"),
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
        props.update(self.extra_properties)
        header = "# Written by framework.testing.kafka.LocalKafkaBroker\n"
        return header + "".join(f"{k}={v}\n" for k, v in props.items())

    def _classpath(self) -> str:
        assert self._libs is not None
        return str(self._libs / "*")

    def _format_storage(self, deadline: float) -> None:
        assert self._data_dir is not None
        cmd = [
            self.java,
            # Keep the error visible: do not bury it under the ~400-line config dump.
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config.AbstractConfig=warn",
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _random_cluster_id(),
            "-c",
            str(self._data_dir / "server.properties"),
        ]
        timeout = max(1.0, deadline - time.monotonic())
        try:
            proc = subprocess.run(
                cmd,
                cwd=self._data_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.output.decode("utf-8", "replace") if exc.output else ""
            raise KafkaBrokerError(
                f"formatting Kafka storage timed out after {timeout:.1f} s: {shlex.join(cmd)}\n"
                f"{_tail(out)}"
            ) from exc
        except OSError as exc:
            raise KafkaBrokerError(f"cannot run {shlex.join(cmd)}: {exc}") from exc
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"formatting Kafka storage failed (exit code {proc.returncode}): "
                f"{shlex.join(cmd)}\n{_tail(proc.stdout.decode('utf-8', 'replace'))}"
            )

    def _launch(self) -> None:
        assert self._data_dir is not None
        log_file = self.log_file
        assert log_file is not None
        log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.java,
            *shlex.split(self.heap),
            *self.jvm_args,
            "-Djava.awt.headless=true",
            f"-Dorg.slf4j.simpleLogger.defaultLogLevel={self.log_level}",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self._data_dir / "server.properties"),
        ]
        with log_file.open("ab") as log:
            log.write(f"# framework: starting {shlex.join(cmd)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    cwd=self._data_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise KafkaBrokerError(f"cannot run {shlex.join(cmd)}: {exc}") from exc
        _LIVE_BROKERS.add(self)

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        reason = "no probe yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise KafkaBrokerError(
                    f"Kafka broker exited with code {code} during start-up; "
                    f"{self._failure_report()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaBrokerError(
                    f"Kafka broker on {self.bootstrap_servers} not ready within "
                    f"{self.startup_timeout:g} s (last probe: {reason}); "
                    f"{self._failure_report()}"
                )
            probe = _probe_metadata(
                self.host, self.port, _NODE_ID, max(0.1, min(self.probe_timeout, remaining))
            )
            result = _run_blocking(probe)
            if result is None:
                return
            reason = result
            time.sleep(min(self.probe_interval, max(0.0, deadline - time.monotonic())))

    def _log_tail(self) -> str:
        log_file = self.log_file
        return _read_tail(log_file) if log_file is not None else "<no log>"

    def _failure_report(self) -> str:
        """Describe a failed start: first error lines, log tail, and where the log is.

        A log inside a temporary data folder is copied out first, because the folder is
        removed when the failed start cleans up.
        """
        log_file = self.log_file
        if log_file is None or not log_file.exists():
            return "no broker log"
        where = str(log_file)
        if (
            self._owns_data_dir
            and self._data_dir is not None
            and log_file.is_relative_to(self._data_dir)
        ):
            fd, saved = tempfile.mkstemp(prefix="framework-kafka-failed-", suffix=".log")
            os.close(fd)
            with contextlib.suppress(OSError):
                shutil.copyfile(log_file, saved)
                where = f"{saved} (copy; the data folder is removed)"
        errors = _error_lines(log_file)
        first = f"first errors:\n{errors}\n" if errors else ""
        return f"broker log: {where}\n{first}log tail:\n{_read_tail(log_file, 30)}"

    def _terminate(self, *, graceful: bool) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                sig = signal.SIGTERM if graceful else signal.SIGKILL
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=self.stop_timeout if graceful else 10.0)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10.0)
            else:
                # The JVM is gone; make sure nothing it forked survives either.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        except subprocess.TimeoutExpired as exc:
            raise KafkaBrokerError(f"Kafka broker pid {proc.pid} did not exit") from exc
        finally:
            if proc.poll() is not None:
                self._proc = None


# --------------------------------------------------------------------------- CLI


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
        print(
            f"Starting Apache Kafka {kafka_version()} (the first run resolves jars with Maven)...",
            file=sys.stderr,
            flush=True,
        )
        try:
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

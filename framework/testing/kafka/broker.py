"""Start a real Apache Kafka 4.x broker (one KRaft node) from jars resolved by Maven.

The broker is the official ``org.apache.kafka:kafka_2.13`` artifact from Maven Central,
resolved once by ``mvn`` into a cache folder, then run with ``java`` as a child process:
one node that is both broker and controller, listening on ``127.0.0.1`` only, with
replication factors of 1 and start-up settings tuned for tests.

Typical use::

    with LocalKafkaBroker() as broker:
        print(broker.bootstrap_servers)  # "127.0.0.1:<port>"

    with LocalKafkaBroker(security="sasl_ssl") as broker:  # adds a SASL_SSL listener
        security = broker.client_security()  # a KafkaSecurity for the framework's clients
        print(broker.secure_bootstrap_servers(), broker.ca_file, broker.sasl_password)

Requirements: ``java`` 17+ and ``mvn`` on ``PATH`` (or passed in), network access to
Maven Central for the first resolution, and ``aiokafka`` for the readiness probe.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from framework.testing.kafka.config import NODE_ID, format_storage, free_port, server_properties
from framework.testing.kafka.errors import BOOTSTRAP_ENV_VAR, KafkaBrokerError
from framework.testing.kafka.jars import (
    CACHE_DIR_ENV_VAR,
    default_cache_root,
    ensure_kafka_jars,
    kafka_version,
)
from framework.testing.kafka.logs import failure_report
from framework.testing.kafka.process import run_tool, spawn, terminate_group
from framework.testing.kafka.readiness import probe_metadata, run_blocking
from framework.testing.kafka.security import (
    SASL_MECHANISMS,
    SecureProtocol,
    TlsFiles,
    listener_properties,
    make_tls,
    normalize_protocols,
    scram_arguments,
)

if TYPE_CHECKING:
    from framework.transports.kafka.security import KafkaSecurity

# The jar names are re-exported so that imports from this module keep working.
__all__ = [
    "BOOTSTRAP_ENV_VAR",
    "CACHE_DIR_ENV_VAR",
    "KafkaBrokerError",
    "LocalKafkaBroker",
    "default_cache_root",
    "ensure_kafka_jars",
    "kafka_version",
]


# Strong references: a broker object dropped without stop() still gets stopped at exit.
_LIVE_BROKERS: set[LocalKafkaBroker] = set()


def _kill_live_brokers() -> None:
    for broker in list(_LIVE_BROKERS):
        with contextlib.suppress(Exception):
            broker.stop()


atexit.register(_kill_live_brokers)

# Credentials go into JAAS and `--add-scram` strings unquoted: keep them to safe characters.
_CREDENTIAL = re.compile(r"[A-Za-z0-9._-]{1,64}")


class LocalKafkaBroker:
    """A single-node Apache Kafka 4.x (KRaft, broker + controller) child process.

    The node listens on ``PLAINTEXT://<host>:<port>`` for clients and on a second port
    for its controller. With *security* it also has one listener per secured protocol
    named (``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``), each on a port of its own: TLS
    with a CA, keystore and truststore made by ``keytool`` at the first start (in
    ``<data_dir>/tls``; clients trust :attr:`ca_file`), SASL with PLAIN, SCRAM-SHA-256
    and SCRAM-SHA-512 for one user (:attr:`sasl_username`, :attr:`sasl_password`). The
    PLAINTEXT listener stays, on loopback, for the readiness probe and for tools.

    Data lives in a temporary folder (or *data_dir*) so that
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
        security: Secured listeners to add: ``"ssl"``, ``"sasl_plaintext"``,
            ``"sasl_ssl"`` (any case), or several of them; ``None`` adds none.
        sasl_username: The SASL user the broker accepts (letters, digits, ``._-``).
        sasl_password: Its password (same characters); ``None`` makes a random one.
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
        security: str | Iterable[str] | None = None,
        sasl_username: str = "framework",
        sasl_password: str | None = None,
    ) -> None:
        self.security = normalize_protocols(security)
        """The secured listeners, as Kafka's protocol names."""
        self.sasl_username = sasl_username
        self.sasl_password = secrets.token_hex(12) if sasl_password is None else sasl_password
        for label, value in (("sasl_username", sasl_username), ("sasl_password", sasl_password)):
            if value is not None and not _CREDENTIAL.fullmatch(value):
                raise KafkaBrokerError(
                    f"{label} must be 1-64 letters, digits, '.', '_' or '-', not {value!r}"
                )
        self._secure_ports: dict[SecureProtocol, int] = {}
        self._tls: TlsFiles | None = None
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

    def secure_bootstrap_servers(self, protocol: str | None = None) -> str:
        """Bootstrap string of a secured listener, ``"<host>:<port>"``.

        Args:
            protocol: ``"ssl"``, ``"sasl_plaintext"`` or ``"sasl_ssl"`` (any case);
                ``None`` means the first of :attr:`security`.

        Raises:
            KafkaBrokerError: the broker has no such listener, or is not started.
        """
        wanted = self._secured(protocol)
        port = self._secure_ports.get(wanted)
        if port is None:
            raise KafkaBrokerError("broker not started: no secured port chosen yet")
        return f"{self.host}:{port}"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate (PEM) clients trust; ``None`` without a TLS listener or
        before :meth:`start`."""
        return self._tls.ca_file if self._tls is not None else None

    @property
    def tls(self) -> TlsFiles | None:
        """The TLS files (CA, keystore, truststore and their password), once made."""
        return self._tls

    def client_security(
        self, protocol: str | None = None, *, mechanism: str = "SCRAM-SHA-512"
    ) -> KafkaSecurity:
        """The :class:`~framework.transports.kafka.KafkaSecurity` that connects to a
        secured listener: this broker's CA for TLS, its user for SASL.

        Args:
            protocol: As for :meth:`secure_bootstrap_servers`.
            mechanism: SASL mechanism (``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``);
                ignored for ``SSL``.
        """
        from framework.transports.kafka.security import KafkaSecurity

        wanted = self._secured(protocol)
        if mechanism.upper() not in SASL_MECHANISMS:
            raise KafkaBrokerError(f"mechanism must be one of {SASL_MECHANISMS}, not {mechanism!r}")
        sasl = wanted.startswith("SASL_")
        return KafkaSecurity(
            protocol=wanted,
            ca_file=self.ca_file if wanted.endswith("SSL") else None,
            mechanism=mechanism.upper() if sasl else None,
            username=self.sasl_username if sasl else None,
            password=self.sasl_password if sasl else None,
        )

    def change_scram_password(self, password: str) -> None:
        """Rotate the SCRAM credentials (SHA-256 and SHA-512) of :attr:`sasl_username`,
        as an operator would (``kafka-configs --alter --entity-type users``). New
        connections need the new password; open ones stay logged in (:meth:`restart`
        drops them). PLAIN keeps the password the broker started with.

        Raises:
            KafkaBrokerError: not running, no SASL listener, or the tool failed.
        """
        if not any(p.startswith("SASL_") for p in self.security):
            raise KafkaBrokerError("this broker has no SASL listener")
        if not _CREDENTIAL.fullmatch(password):
            raise KafkaBrokerError(
                f"password must be 1-64 letters, digits, '.', '_' or '-', not {password!r}"
            )
        if not self.is_running() or self._data_dir is None:
            raise KafkaBrokerError("change_scram_password() needs a running broker")
        for mechanism in SASL_MECHANISMS[1:]:  # one per request: the broker takes no more
            scram = f"{mechanism}=[password={password}]"
            cmd = [self.java, "-cp", self._classpath(), "kafka.admin.ConfigCommand",
                   "--bootstrap-server", self.bootstrap_servers, "--alter",
                   "--add-config", scram, "--entity-type", "users",
                   "--entity-name", self.sasl_username]  # fmt: skip
            run_tool(cmd, what="changing SCRAM credentials", cwd=self._data_dir, timeout=60.0)
        self.sasl_password = password

    def _secured(self, protocol: str | None) -> SecureProtocol:
        if not self.security:
            raise KafkaBrokerError("this broker has no secured listener (security=None)")
        if protocol is None:
            return self.security[0]
        wanted = normalize_protocols(protocol)[0]
        if wanted not in self.security:
            raise KafkaBrokerError(
                f"this broker has no {wanted} listener (it has {', '.join(self.security)})"
            )
        return wanted

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
            self._prepare_data_dir(deadline)
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
                self._secure_ports = {}
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
            self._port = free_port(self.host)
            chosen = True
        if self._controller_port is None:
            self._controller_port = free_port(self.host)
            while self._controller_port == self._port:
                self._controller_port = free_port(self.host)
            chosen = True
        taken = {self._port, self._controller_port}
        for protocol in self.security:
            if protocol not in self._secure_ports:
                port = free_port(self.host)
                while port in taken:
                    port = free_port(self.host)
                self._secure_ports[protocol] = port
                taken.add(port)
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
            self._tls = None

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

    def _prepare_data_dir(self, deadline: float) -> None:
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
        self._tls = None
        if any(p.endswith("SSL") for p in self.security):
            self._tls = make_tls(
                self._data_dir / "tls",
                host=self.host,
                java=self.java,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        listeners, secured = listener_properties(
            self._secure_ports,
            host=self.host,
            tls=self._tls,
            username=self.sasl_username,
            password=self.sasl_password,
        )
        (self._data_dir / "server.properties").write_text(
            server_properties(
                host=self.host,
                port=self.port,
                controller_port=self.controller_port,
                data_dir=self._data_dir,
                session_timeout=self.session_timeout,
                secure_listeners=listeners,
                extra_properties={**secured, **self.extra_properties},
            )
        )

    def _classpath(self) -> str:
        assert self._libs is not None
        return str(self._libs / "*")

    def _format_storage(self, deadline: float) -> None:
        assert self._data_dir is not None
        sasl = any(p.startswith("SASL_") for p in self.security)
        format_storage(
            java=self.java,
            classpath=self._classpath(),
            data_dir=self._data_dir,
            deadline=deadline,
            extra_args=scram_arguments(self.sasl_username, self.sasl_password) if sasl else (),
        )

    def _launch(self) -> None:
        assert self._data_dir is not None
        log_file = self.log_file
        assert log_file is not None
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
        self._proc = spawn(cmd, cwd=self._data_dir, log_file=log_file)
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
            probe = probe_metadata(
                self.host, self.port, NODE_ID, max(0.1, min(self.probe_timeout, remaining))
            )
            result = run_blocking(probe)
            if result is None:
                return
            reason = result
            time.sleep(min(self.probe_interval, max(0.0, deadline - time.monotonic())))

    def _failure_report(self) -> str:
        """Describe a failed start: first error lines, log tail, and where the log is."""
        temporary = self._data_dir if self._owns_data_dir else None
        return failure_report(self.log_file, temporary_dir=temporary)

    def _terminate(self, *, graceful: bool) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            terminate_group(proc, graceful=graceful, stop_timeout=self.stop_timeout)
        finally:
            if proc.poll() is not None:
                self._proc = None

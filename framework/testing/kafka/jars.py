"""Resolve the official Kafka broker jars with Maven into a cache folder, once.

The jars are ``org.apache.kafka:kafka_2.13`` and its runtime dependencies from Maven
Central, as pinned by the ``pom.xml`` shipped next to this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from framework.testing.kafka.errors import BOOTSTRAP_ENV_VAR, KafkaBrokerError
from framework.testing.kafka.logs import tail
from framework.testing.kafka.process import run_tool

__all__ = [
    "CACHE_DIR_ENV_VAR",
    "MAVEN_DEPENDENCY_PLUGIN",
    "default_cache_root",
    "ensure_kafka_jars",
    "kafka_version",
]

CACHE_DIR_ENV_VAR = "FRAMEWORK_CACHE_DIR"
"""Root folder of the jar cache (default ``~/.cache/framework``)."""

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_POM_NAME = "pom.xml"
_MARKER_NAME = ".complete"


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
            out = run_tool(cmd, what="Maven", cwd=home, timeout=timeout)
            if not any(staging.glob("kafka_2.13-*.jar")):
                raise KafkaBrokerError(
                    f"Maven succeeded but produced no kafka_2.13 jar: {shlex.join(cmd)}\n"
                    f"{tail(out)}"
                )
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
            marker.write_text(digest + "\n")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return libs

"""Resolve the official Kafka broker jars with Maven into a cache folder, once.

The jars are ``org.apache.kafka:kafka_2.13`` and its runtime dependencies from Maven
Central, as pinned by the ``pom.xml`` shipped next to this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
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


# Maven's batch-mode log line for a finished download.
_DOWNLOADED = re.compile(r"Downloaded from [^:]+: \S+/([^/\s]+) \(([^)]*?)(?: at [^)]*)?\)")

Progress = Callable[[str], None]


def downloaded(line: str) -> tuple[str, str] | None:
    """``(file name, size)`` if ``line`` is Maven's log of a finished download."""
    found = _DOWNLOADED.search(line)
    return (found.group(1), found.group(2)) if found else None


def _run_maven(cmd: list[str], cwd: Path, timeout: float, progress: Progress) -> str:
    """``run_tool`` for Maven, telling ``progress`` each file it downloads as it logs it
    (a first run fetches ~43 MB from Maven Central and may take minutes)."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise KafkaBrokerError(f"cannot run {shlex.join(cmd)}: {exc}") from exc
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    lines: list[str] = []
    downloads = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if (got := downloaded(line)) is not None:
                downloads += 1
                progress(f"  downloaded {got[0]} ({got[1]}) [{downloads} files]")
        code = proc.wait()
    finally:
        watchdog.cancel()
    out = "".join(lines)
    elapsed = time.monotonic() - started
    if elapsed >= timeout:
        raise KafkaBrokerError(
            f"Maven timed out after {timeout:.1f} s: {shlex.join(cmd)}\n{tail(out)}"
        )
    if code != 0:
        raise KafkaBrokerError(
            f"Maven failed with exit code {code}: {shlex.join(cmd)}\n{tail(out)}"
        )
    progress(f"  Maven done in {elapsed:.1f} s ({downloads} files downloaded)")
    return out


def ensure_kafka_jars(
    cache_dir: Path | None = None,
    *,
    mvn: str = "mvn",
    timeout: float = 900.0,
    progress: Progress | None = None,
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
        progress: Told, one line at a time, what Maven downloads and copies (``None``:
            Maven runs quietly). Not called when the jars are already cached.

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
            *(["-q"] if progress is None else []),
            "-Dstyle.color=never",
            "-f",
            str(pom_path),
            f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        try:
            if progress is None:
                out = run_tool(cmd, what="Maven", cwd=home, timeout=timeout)
            else:
                progress(f"Resolving Kafka {version} jars with Maven into {libs}")
                out = _run_maven(cmd, home, timeout, progress)
            if not any(staging.glob("kafka_2.13-*.jar")):
                raise KafkaBrokerError(
                    f"Maven succeeded but produced no kafka_2.13 jar: {shlex.join(cmd)}\n"
                    f"{tail(out)}"
                )
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
            marker.write_text(digest + "\n")
            if progress is not None:
                jars = list(libs.glob("*.jar"))
                size = sum(j.stat().st_size for j in jars) / 1e6
                progress(f"  {len(jars)} jars ({size:.1f} MB) in {libs}")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return libs

"""A real ``redis-server`` for the tests: started once per session on a free loopback
port, in a temporary directory, without persistence; never the system service.

Environment:
    REDIS_URL: use this existing server instead of starting one.
    REQUIRE_REDIS: ``1`` turns "redis-server is missing or does not start" into a test
        failure instead of a skip (CI sets it, where Redis must be tested).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.timing import TIME_FACTOR

REQUIRE_ENV_VAR = "REQUIRE_REDIS"
URL_ENV_VAR = "REDIS_URL"


class RedisServerError(RuntimeError):
    """``redis-server`` is not installed or did not start."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; ``start()`` returns once it answers ``PING``.

    Args:
        start_timeout: seconds to wait for the server to answer.
        attempts: ports to try (another process may take a free port first).
    """

    def __init__(self, *, start_timeout: float = 10.0 * TIME_FACTOR, attempts: int = 3) -> None:
        self.start_timeout = start_timeout
        self.attempts = attempts
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._binary = "redis-server"
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start on a free port; raises ``RedisServerError`` when that fails."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server is not installed (Debian: redis-server)")
        self._binary = binary
        self._dir = tempfile.TemporaryDirectory(prefix="redis-test-")
        for _ in range(self.attempts):
            if self._launch(_free_port()):
                return self
        self._fail()

    def restart(self) -> None:
        """Kill the server and start a new one on the same port (Redis loses its data,
        as it would restarting without persistence)."""
        self._kill()
        if not self._launch(self.port):
            self._fail()

    def _launch(self, port: int) -> bool:
        assert self._dir is not None
        log = Path(self._dir.name) / "redis.log"
        self.port = port
        self.proc = subprocess.Popen(
            [self._binary, "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self._dir.name,
             "--logfile", str(log), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout
        # A child process has no event to await: poll its port, briefly.
        while self.proc.poll() is None and time.monotonic() < deadline:
            if _ping(self.port):
                return True
            time.sleep(0.02)
        self._kill()
        return False

    def _fail(self) -> NoReturn:
        log = Path(self._dir.name) / "redis.log" if self._dir is not None else None
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        self.stop()
        raise RedisServerError(f"redis-server did not start:\n{tail}")

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5 * TIME_FACTOR)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5 * TIME_FACTOR)

    def stop(self) -> None:
        self._kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _missing(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV_VAR) == "1":
        pytest.fail(f"{reason}\n({REQUIRE_ENV_VAR}=1 makes this a failure)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def redis_package_or_skip() -> None:
    """Skip (or fail, when ``REQUIRE_REDIS=1``) unless the ``redis`` package is installed;
    call it before importing ``redis`` or ``examples.redis_streams``."""
    try:
        import redis  # noqa: F401
    except ImportError:
        _missing("the redis package is not installed (pip install -e '.[test]')")


def start_or_skip(server: RedisServer) -> RedisServer:
    """Start ``server``; skip the test when that fails, or fail it when ``REQUIRE_REDIS=1``."""
    redis_package_or_skip()
    try:
        return server.start()
    except (RedisServerError, OSError) as exc:
        _missing(f"{exc}\n(install redis-server, or set {URL_ENV_VAR})")


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """The URL of a Redis server shared by the session: ``$REDIS_URL``, or a local
    ``redis-server`` started for the session (skipped when missing, unless
    ``REQUIRE_REDIS=1``)."""
    existing = os.environ.get(URL_ENV_VAR)
    if existing:
        redis_package_or_skip()
        yield existing
        return
    server = start_or_skip(RedisServer())
    try:
        yield server.url
    finally:
        server.stop()

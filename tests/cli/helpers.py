"""Run the real ``framework`` command as a subprocess, with bounded waits."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from tests.timing import TIME_FACTOR

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 60.0 * TIME_FACTOR
"""Upper bound for one CLI command, in seconds."""


def env(extra: Mapping[str, str] | None = None, *, pythonpath: Path = REPO_ROOT) -> dict[str, str]:
    """The environment for a CLI subprocess: this checkout's framework first on the path."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    out.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    out["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(pythonpath), str(REPO_ROOT)]))
    out.update(extra or {})
    return out


def cli(
    *args: str, cwd: Path = REPO_ROOT, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m framework *args`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "framework", *args],
        cwd=cwd,
        env=env(extra_env, pythonpath=cwd),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


class Lines:
    """Lines of a subprocess's stream, read by a thread, awaited with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line (from now on) matching ``pattern``; fails at EOF or timeout."""
        regex = re.compile(pattern)
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s") from None
            if line is None:
                raise AssertionError(f"stream ended without {pattern!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            found = regex.search(line)
            if found:
                return found

    def rest(self, timeout: float) -> str:
        """Everything until the stream ends."""
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                return "".join(self.seen)
            self.seen.append(line)


def start(
    *args: str, cwd: Path = REPO_ROOT, extra_env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[str], Lines, Lines]:
    """``python -m framework *args`` in the background: the process, stdout and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "framework", *args],
        cwd=cwd,
        env=env(extra_env, pythonpath=cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    return proc, Lines(proc.stdout), Lines(proc.stderr)


def kill(proc: subprocess.Popen[str]) -> None:
    """End ``proc`` if a test left it running (after a failed assertion): SIGTERM first,
    so it stops what it started (a Kafka broker), then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=COMMAND_TIMEOUT_S)

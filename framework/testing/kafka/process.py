"""The broker JVM as a child process in its own process group: spawn and terminate."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from framework.testing.kafka.errors import KafkaBrokerError
from framework.testing.kafka.logs import tail

__all__ = ["run_tool", "spawn", "terminate_group"]


def run_tool(cmd: Sequence[str], *, what: str, cwd: Path, timeout: float) -> str:
    """Run a short-lived tool (Maven, Kafka's StorageTool) and return its output.

    Raises:
        KafkaBrokerError: naming ``what``, the command line and the end of its output,
            if it cannot run, runs longer than ``timeout`` seconds, or exits non-zero.
    """
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.output.decode("utf-8", "replace") if exc.output else ""
        raise KafkaBrokerError(
            f"{what} timed out after {timeout:.1f} s: {shlex.join(cmd)}\n{tail(out)}"
        ) from exc
    except OSError as exc:
        raise KafkaBrokerError(f"cannot run {shlex.join(cmd)}: {exc}") from exc
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise KafkaBrokerError(
            f"{what} failed with exit code {proc.returncode}: {shlex.join(cmd)}\n{tail(out)}"
        )
    return out


def spawn(cmd: Sequence[str], *, cwd: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """Start *cmd* in a new session, appending its stdout and stderr to *log_file*.

    The new session keeps Ctrl-C in a terminal from reaching the broker directly.

    Raises:
        KafkaBrokerError: If the command cannot be run.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"# framework: starting {shlex.join(cmd)}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise KafkaBrokerError(f"cannot run {shlex.join(cmd)}: {exc}") from exc


def terminate_group(proc: subprocess.Popen[bytes], *, graceful: bool, stop_timeout: float) -> None:
    """End the process group of *proc*: SIGTERM (or SIGKILL), then SIGKILL if it lingers.

    Args:
        proc: A process started by :func:`spawn`.
        graceful: Send SIGTERM first and wait *stop_timeout*; ``False`` sends SIGKILL.
        stop_timeout: Time between SIGTERM and SIGKILL, in seconds.

    Raises:
        KafkaBrokerError: If the process has not exited 10 s after SIGKILL.
    """
    try:
        if proc.poll() is None:
            sig = signal.SIGTERM if graceful else signal.SIGKILL
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=stop_timeout if graceful else 10.0)
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

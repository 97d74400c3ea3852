"""Read the broker's log back for error messages: tails, first errors, failure reports."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["LOG_TAIL_LINES", "error_lines", "failure_report", "read_tail", "tail"]

LOG_TAIL_LINES = 60


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last *lines* lines of *text*."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def read_tail(path: Path, lines: int = LOG_TAIL_LINES, max_bytes: int = 64_000) -> str:
    """Return the last *lines* lines of the last *max_bytes* bytes of *path*."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return tail(data.decode("utf-8", "replace"), lines)


def error_lines(path: Path, limit: int = 12) -> str:
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


def failure_report(log_file: Path | None, *, temporary_dir: Path | None) -> str:
    """Describe a failed start: first error lines, log tail, and where the log is.

    A log inside a temporary data folder is copied out first, because the folder is
    removed when the failed start cleans up.

    Args:
        log_file: The broker log, or ``None`` if there is none yet.
        temporary_dir: The data folder if it is temporary (removed on stop), else ``None``.
    """
    if log_file is None or not log_file.exists():
        return "no broker log"
    where = str(log_file)
    if temporary_dir is not None and log_file.is_relative_to(temporary_dir):
        fd, saved = tempfile.mkstemp(prefix="framework-kafka-failed-", suffix=".log")
        os.close(fd)
        with contextlib.suppress(OSError):
            shutil.copyfile(log_file, saved)
            where = f"{saved} (copy; the data folder is removed)"
    errors = error_lines(log_file)
    first = f"first errors:\n{errors}\n" if errors else ""
    return f"broker log: {where}\n{first}log tail:\n{read_tail(log_file, 30)}"

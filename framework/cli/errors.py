"""How the CLI fails: one clear line on stderr, and an exit code (2 usage, 1 app errors).

A user's own exception (raised while importing or starting their app) also prints the
traceback of *their* frames, without the framework's and importlib's: that is where the
fix is. ``framework --traceback ...`` prints every frame.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

import framework

USAGE = 2
APP_ERROR = 1

# Frames in these folders are the framework's or the import machinery's, not the user's.
_INTERNAL_DIRS = tuple(
    str(Path(m.__file__).resolve().parent) for m in (framework, importlib) if m.__file__
)


class CliError(Exception):
    """A failure the CLI reports as one line and an exit code.

    Args:
        message: what went wrong and what to do about it.
        code: the process exit code (1 for an app error, 2 for a usage error).
    """

    def __init__(self, message: str, *, code: int = APP_ERROR) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """The command line itself is wrong (exit code 2, like argparse)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=USAGE)


class UserCodeError(CliError):
    """The user's code raised; the report adds the traceback of the user's frames."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(f"{message}: {type(cause).__name__}: {cause}")
        self.cause = cause


def _is_internal(filename: str) -> bool:
    resolved = str(Path(filename).resolve()) if not filename.startswith("<") else filename
    return resolved.startswith(_INTERNAL_DIRS) or filename.startswith("<frozen importlib")


def user_location(exc: BaseException) -> str | None:
    """``path:line`` of the innermost frame of ``exc`` in the user's code, if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_internal(f.filename)]
    if not frames:
        return None
    frame = frames[-1]
    try:
        shown = str(Path(frame.filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = frame.filename
    return f"{shown}:{frame.lineno}"


def user_traceback(exc: BaseException, *, full: bool = False) -> str:
    """The traceback of ``exc`` limited to the user's frames (all of them if ``full``)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not full:
        mine = [f for f in frames if not _is_internal(f.filename)]
        frames = traceback.StackSummary.from_list(mine or frames)
    lines = ["Traceback (most recent call last):\n", *frames.format()]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def report(exc: CliError, *, full_traceback: bool = False) -> int:
    """Print ``exc`` to stderr and return its exit code."""
    if isinstance(exc, UserCodeError):
        print(user_traceback(exc.cause, full=full_traceback), file=sys.stderr, end="")
    print(f"error: {exc}", file=sys.stderr)
    return exc.code

"""Structured logging: JSON lines carrying the message in hand.

``configure_logging()`` adds one handler to the root logger. Its ``ContextFilter`` copies
the current message's pattern, transport, handler, correlation id and trace ids onto
each record, so a handler's own ``logging.getLogger(__name__).info(...)`` lines carry
them. Apps started while such a handler is installed wrap their handlers to set that
context (nothing is wrapped otherwise).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

from framework.exceptions import ConfigurationError
from framework.observability._context import CURRENT

LEVEL_ENV_VARS = ("FRAMEWORK_LOG_LEVEL", "LOG_LEVEL")
"""Environment variables read for the level, in this order, when none is given."""

CONTEXT_FIELDS = ("pattern", "transport", "handler", "correlation_id", "trace_id", "span_id")
"""Record attributes the ``ContextFilter`` sets while a message is being handled."""

_STANDARD = frozenset(
    [*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "taskName"]
)


class ContextFilter(logging.Filter):
    """Adds ``CONTEXT_FIELDS`` to records logged while a message is handled.

    Put it on your own handlers (``dictConfig`` ``filters``) to get the fields without
    ``configure_logging``; a root handler carrying it also turns message context on for
    apps started afterwards. Fields without a value (no correlation id on an event)
    are not set.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        scope = CURRENT.get()
        if scope is None:
            return True
        values = (
            scope.pattern,
            scope.transport,
            scope.handler,
            scope.correlation_id,
            scope.trace_id,
            scope.span_id,
        )
        fields = record.__dict__
        for name, value in zip(CONTEXT_FIELDS, values, strict=True):
            if value is not None and name not in fields:
                fields[name] = value
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, the context fields that are set, ``extra=`` fields, and ``exception``
    (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    """Classic text lines with the context fields appended in brackets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = record.__dict__
        found = [f"{k}={fields[k]}" for k in CONTEXT_FIELDS if k in fields]
        return f"{text} [{' '.join(found)}]" if found else text


class _FrameworkHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` installs (found again to be replaced)."""


def resolve_level(level: int | str | None) -> int:
    """The level to use: ``level``, else ``$FRAMEWORK_LOG_LEVEL``, else ``$LOG_LEVEL``,
    else INFO.

    Raises:
        ConfigurationError: the level is not a known level name or number.
    """
    if level is None:
        level = next((os.environ[v] for v in LEVEL_ENV_VARS if os.environ.get(v)), "INFO")
    if isinstance(level, int):
        return level
    text = level.strip().upper()
    if text.isdigit():
        return int(text)
    number = logging.getLevelNamesMapping().get(text)
    if number is None:
        raise ConfigurationError(
            f"Unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return number


def configure_logging(
    level: int | str | None = None,
    *,
    json: bool = True,
    stream: IO[str] | None = None,
    context: bool = True,
) -> logging.Handler:
    """Log to ``stream`` as JSON lines (or text), with the message in hand on each line.

    Adds one handler to the root logger and sets the root level; calling it again
    replaces that handler (other handlers are left alone). uvicorn configures its own
    loggers: pass ``log_config=None`` to ``app.run()`` to have its lines here too.

    Args:
        level: a level name or number; ``None`` reads ``FRAMEWORK_LOG_LEVEL``, then
            ``LOG_LEVEL``, then uses INFO.
        json: JSON lines (``True``) or text lines with the fields in brackets.
        stream: where lines go; ``None`` is ``sys.stderr``.
        context: add the message fields (pattern, transport, handler, correlation id,
            trace and span ids) to lines logged while a message is handled. Apps
            started after this call then set that context around every handler.

    Returns:
        The installed handler (remove it from the root logger to undo).

    Raises:
        ConfigurationError: an unknown level.
    """
    number = resolve_level(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _FrameworkHandler)]:
        root.removeHandler(old)
    handler = _FrameworkHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else _TextFormatter())
    if context:
        handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(number)
    return handler


def logging_context_wanted() -> bool:
    """Whether a root handler carries a ``ContextFilter`` (then apps set message scope)."""
    return any(
        isinstance(f, ContextFilter) for h in logging.getLogger().handlers for f in h.filters
    )

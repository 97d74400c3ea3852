"""Fixtures for the observability tests: captured JSON log lines, a test app's HTTP."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from framework.observability import configure_logging


class LogLines:
    """What ``configure_logging`` wrote, as parsed JSON lines."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def message(self, text: str) -> dict[str, Any]:
        """The one line whose message is ``text``."""
        found = [line for line in self.all() if line["message"] == text]
        assert len(found) == 1, (text, self.all())
        return found[0]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """``configure_logging(level="INFO")`` into a buffer; undone after the test."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging("INFO", stream=stream)
    try:
        yield LogLines(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

"""Structured logging: JSON lines, the level from the environment, and the message in
hand on every line a handler logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from framework import Application, ConfigurationError, create_app
from framework.observability import Observability, configure_logging
from framework.transports.websocket import WebSocketClient, WebSocketTransport
from tests.observability.conftest import LogLines
from tests.observability.hops import TRACE_ID, TRACEPARENT, HopsModule, Seen
from tests.timing import TIME_FACTOR
from tests.transports.harnesses.websocket import uvicorn_running

LIMIT = 10 * TIME_FACTOR
HANDLER_FIELDS = {"pattern", "transport", "handler", "correlation_id", "trace_id", "span_id"}


@pytest.fixture
def restore_root() -> Iterator[logging.Logger]:
    """The root logger, with its handlers and level put back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def test_a_handlers_own_log_lines_name_the_message(log_lines: LogLines) -> None:
    # configure_logging alone (no Observability) turns the logging context on.
    async with create_app(HopsModule) as app:
        headers = {"x-correlation-id": "req-42"}
        await app.client.send("hop.one", 5, headers=headers)
        await asyncio.wait_for(app.get(Seen).done.wait(), LIMIT)
    one = log_lines.message("hop one handling 5")
    assert one["level"] == "INFO" and one["logger"] == "tests.hops"
    assert one["timestamp"].endswith("Z")
    assert {k: one[k] for k in ("pattern", "transport", "handler", "correlation_id")} == {
        "pattern": "hop.one",
        "transport": "memory",
        "handler": "HopsController.one",
        "correlation_id": "req-42",
    }
    assert "trace_id" not in one  # tracing is off without Observability
    two = log_lines.message("hop two handling 5")
    assert (two["pattern"], two["handler"]) == ("hop.two", "HopsController.two")
    assert "correlation_id" not in two  # an event has none
    started = next(line for line in log_lines.all() if line["message"].startswith("App started"))
    assert not HANDLER_FIELDS & started.keys()


async def test_trace_ids_are_logged_when_tracing_is_on(log_lines: LogLines) -> None:
    async with create_app(HopsModule, observability=Observability()) as app:
        await app.client.send("hop.one", 6, headers={"traceparent": TRACEPARENT})
        seen = app.get(Seen)
        await asyncio.wait_for(seen.done.wait(), LIMIT)
    one, two = log_lines.message("hop one handling 6"), log_lines.message("hop two handling 6")
    assert one["trace_id"] == two["trace_id"] == TRACE_ID
    assert (one["span_id"], two["span_id"]) == (seen.hops["one"].span_id, seen.hops["two"].span_id)


async def test_websocket_request_lines_carry_the_frame_id(log_lines: LogLines) -> None:
    app = create_app(HopsModule, transports=[WebSocketTransport("/ws")])
    async with (
        uvicorn_running(app) as port,
        WebSocketClient(f"ws://127.0.0.1:{port}/ws") as client,
    ):
        await client.send("hop.one", 7)
        await asyncio.wait_for(app.get(Seen).done.wait(), LIMIT)
    line = log_lines.message("hop one handling 7")
    assert (line["transport"], line["pattern"]) == ("ws", "hop.one")
    assert line["correlation_id"].isdigit()  # the client's frame id


async def test_exceptions_and_extra_fields_are_kept(log_lines: LogLines) -> None:
    log = logging.getLogger("tests.extra")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed", extra={"order_id": 3})
    line = log_lines.message("it failed")
    assert line["level"] == "ERROR" and line["order_id"] == 3
    assert "ValueError: boom" in line["exception"]


async def test_handlers_are_wrapped_only_when_context_or_metrics_are_on() -> None:
    def modules(app: Application) -> set[str]:
        return {h.call.__module__ for h in app.router.handlers}

    async with create_app(HopsModule) as app:
        assert modules(app) == {"framework.messaging.router"}  # as compiled: no cost
    stream = io.StringIO()
    handler = configure_logging(stream=stream)
    try:
        async with create_app(HopsModule) as app:
            assert modules(app) == {"framework.observability._instrument"}
    finally:
        logging.getLogger().removeHandler(handler)
    observed = Observability(tracing=False)  # health only
    async with create_app(HopsModule, observability=observed) as app:
        assert modules(app) == {"framework.messaging.router"}


def test_level_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, restore_root: logging.Logger
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "error")
    configure_logging(stream=io.StringIO())
    assert restore_root.level == logging.ERROR
    monkeypatch.setenv("FRAMEWORK_LOG_LEVEL", "warning")  # wins over LOG_LEVEL
    configure_logging(stream=io.StringIO())
    assert restore_root.level == logging.WARNING
    configure_logging("DEBUG", stream=io.StringIO())  # an argument wins over both
    assert restore_root.level == logging.DEBUG
    monkeypatch.delenv("FRAMEWORK_LOG_LEVEL")
    monkeypatch.delenv("LOG_LEVEL")
    configure_logging(stream=io.StringIO())
    assert restore_root.level == logging.INFO
    # Each call replaced the handler the previous one installed.
    ours = [h for h in restore_root.handlers if type(h).__name__ == "_FrameworkHandler"]
    assert len(ours) == 1
    with pytest.raises(ConfigurationError, match="Unknown log level 'loud'"):
        configure_logging("loud")


def test_text_lines_and_filtered_levels(restore_root: logging.Logger) -> None:
    stream = io.StringIO()
    configure_logging("WARNING", json=False, stream=stream)
    logging.getLogger("tests.text").info("hidden")
    logging.getLogger("tests.text").warning("shown %s", "here")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING tests.text: shown here")


def test_json_lines_are_one_object_per_line(restore_root: logging.Logger) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("tests.json").info("two\nlines")
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "two\nlines"

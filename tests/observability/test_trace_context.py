"""W3C ``traceparent`` parsing and outgoing headers, without an event loop."""

from __future__ import annotations

import pytest

from framework.messaging.context import MessageContext
from framework.observability import MessageScope, parse_traceparent, trace_headers
from framework.observability._context import CURRENT

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_split() -> None:
    assert parse_traceparent(VALID) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "01",
    )
    assert parse_traceparent(VALID.encode()) == parse_traceparent(VALID)  # Kafka bytes
    # A later version may append fields; version 00 may not.
    assert parse_traceparent("01" + VALID[2:] + "-extra") is not None
    assert parse_traceparent(VALID + "-extra") is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        VALID[:-1],
        VALID.upper(),
        "ff" + VALID[2:],
        VALID.replace("4bf92f3577b34da6a3ce929d0e0e4736", "0" * 32),
        VALID.replace("00f067aa0ba902b7", "0" * 16),
        VALID.replace("-", "_"),
        VALID[:-2] + "zz",
    ],
)
def test_invalid_traceparents_are_rejected(value: object) -> None:
    assert parse_traceparent(value) is None


def test_outgoing_headers_outside_a_handler_are_untouched() -> None:
    headers = {"a": "b"}
    assert trace_headers(headers) is headers
    assert trace_headers(None) is None


def test_outgoing_headers_carry_the_current_span_and_state() -> None:
    incoming = {"traceparent": VALID, "tracestate": "vendor=1"}
    scope = MessageScope(MessageContext("p", "memory", incoming), "C.h", tracing=True)
    token = CURRENT.set(scope)
    try:
        out = trace_headers({"x": "1"})
        explicit = trace_headers({"traceparent": "mine"})
    finally:
        CURRENT.reset(token)
    assert out == {
        "x": "1",
        "traceparent": f"00-4bf92f3577b34da6a3ce929d0e0e4736-{scope.span_id}-01",
        "tracestate": "vendor=1",
    }
    assert explicit == {"traceparent": "mine"}  # the caller's own choice wins
    assert scope.parent_span_id == "00f067aa0ba902b7"
    assert scope.span_id == scope.span_id and scope.span_id != scope.parent_span_id


def test_without_tracing_a_scope_has_no_trace() -> None:
    scope = MessageScope(MessageContext("p", "kafka", {"traceparent": VALID}), "C.h", False)
    assert (scope.trace_id, scope.span_id, scope.traceparent) == (None, None, None)
    token = CURRENT.set(scope)
    try:
        assert trace_headers(None) is None
    finally:
        CURRENT.reset(token)


def test_correlation_ids_come_from_headers_or_the_frame_id() -> None:
    kafka = MessageContext("p", "kafka", {"kafka_correlationId": b"c-1"})
    ws = MessageContext("p", "ws", {}, {"event": "p", "data": 1, "id": 9})
    event = MessageContext("p", "memory", None, b"{}")
    assert MessageScope(kafka, None, False).correlation_id == "c-1"
    assert MessageScope(ws, None, False).correlation_id == "9"
    assert MessageScope(event, None, False).correlation_id is None

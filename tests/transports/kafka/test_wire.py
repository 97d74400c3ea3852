"""The NestJS-compatible wire format, without a broker or an event loop."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, RootModel

from framework.transports.kafka import wire


class Order(BaseModel):
    id: int
    total: float


class Name(RootModel[str]):
    pass


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (None, None),
        (b"\x00raw", b"\x00raw"),
        ("hello", b"hello"),
        ("", b""),
        ({"a": 1}, b'{"a":1}'),
        ([1, 2], b"[1,2]"),
        (42, b"42"),
        (1.5, b"1.5"),
        (True, b"true"),
        (Order(id=1, total=2), b'{"id":1,"total":2.0}'),
        (Name("x"), b"x"),  # a string is raw text on this wire, never quoted
    ],
)
def test_encode_value_follows_nestjs_serializer(value: object, encoded: bytes | None) -> None:
    assert wire.encode_value(value) == encoded


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (b"", ""),
        (b'{"id":1}', b'{"id":1}'),  # JSON stays bytes: validated straight from them
        (b"[1,2]", b"[1,2]"),
        (b"\x00\x01binary", b"\x00\x01binary"),
        (b"42", "42"),  # text: pydantic turns it into 42 for an int payload
        (b"hello", "hello"),
    ],
)
def test_payload_is_what_nestjs_handlers_receive(value: bytes | None, expected: object) -> None:
    assert wire.payload(value) == expected


def test_payload_rejects_text_that_is_not_utf8() -> None:
    with pytest.raises(UnicodeDecodeError):
        wire.payload(b"\xff\xfe")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (b'{"a":[1]}', {"a": [1]}),
        (b"[1]", [1]),
        (b"{not json", "{not json"),
        (b"42", "42"),
        (b"\x00bin", b"\x00bin"),
        (b"\xff", b"\xff"),
    ],
)
def test_decode_value_follows_nestjs_parser(value: bytes | None, expected: object) -> None:
    assert wire.decode_value(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"6", 6),
        (b"-1.5", -1.5),
        (b"true", True),
        (b"false", False),
        (b"null", None),
        (b"hello", "hello"),
        (b"nice", "nice"),
        (b"-x", "-x"),
        (b'{"i":0}', {"i": 0}),
        (b"", ""),
    ],
)
def test_reply_values_decode_json_scalars(value: bytes, expected: object) -> None:
    assert wire.decode_reply_value(value) == expected


def test_request_headers_round_trip() -> None:
    headers = wire.request_headers("c-1", "orders.get.reply", 2, {"trace": "t1"})
    assert headers == [
        ("trace", b"t1"),
        ("kafka_correlationId", b"c-1"),
        ("kafka_replyTopic", b"orders.get.reply"),
        ("kafka_replyPartition", b"2"),
    ]
    assert wire.request_info(headers) == wire.RequestInfo("c-1", "orders.get.reply", 2)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("kafka_correlationId", b"c")], None),
        ([("kafka_replyTopic", b"t")], None),
        ([("kafka_correlationId", b"c"), ("kafka_replyTopic", b"t")], ("c", "t", None)),
        (
            [
                ("kafka_correlationId", b"c"),
                ("kafka_replyTopic", b"t"),
                ("kafka_replyPartition", b"1.0"),
            ],
            ("c", "t", 1),
        ),
        (
            [
                ("kafka_correlationId", b"c"),
                ("kafka_replyTopic", b"t"),
                ("kafka_replyPartition", b"x"),
            ],
            ("c", "t", None),
        ),
        (
            [
                ("kafka_correlationId", b"c"),
                ("kafka_replyTopic", b"t"),
                ("kafka_replyPartition", b"-1"),
            ],
            ("c", "t", None),
        ),
    ],
)
def test_request_info_treats_incomplete_requests_as_events(
    headers: list[tuple[str, bytes]], expected: tuple[str, str, int | None] | None
) -> None:
    info = wire.request_info(headers)
    if expected is None:
        assert info is None
    else:
        assert info == wire.RequestInfo(*expected)


def test_single_reply_carries_value_and_disposed() -> None:
    headers = wire.reply_headers("c-9", disposed=True)
    assert headers == [("kafka_correlationId", b"c-9"), ("kafka_nest-is-disposed", b"\x00")]
    reply = wire.parse_reply(headers, b'{"id":1}')
    assert reply == wire.Reply("c-9", {"id": 1}, None, True, True)


def test_error_replies_become_error_bodies() -> None:
    body = {"status": "error", "message": "order 7 is closed"}
    headers = wire.reply_headers("c", disposed=True, error=body)
    assert ("kafka_nest-err", b'{"status":"error","message":"order 7 is closed"}') in headers
    assert wire.parse_reply(headers, None) == wire.Reply("c", None, body, True, False)
    # NestJS sends "no handler" as plain text; callers get the same body shape.
    text = wire.parse_reply(wire.reply_headers("c", disposed=False, error=wire.NO_HANDLER), None)
    assert text is not None and text.disposed
    assert text.error == {"status": "error", "message": wire.NO_HANDLER}


def test_end_of_stream_without_item() -> None:
    headers = wire.reply_headers("c", disposed=True, no_value=True)
    assert wire.parse_reply(headers, None) == wire.Reply("c", None, None, True, False)
    assert wire.parse_reply([("other", b"x")], b"1") is None


def test_dead_letter_headers_name_the_origin_and_failure() -> None:
    try:
        raise ValueError("x" * 5000)
    except ValueError as exc:
        error = exc
    original = [("trace", b"t"), ("kafka_deliveryAttempt", b"9")]
    headers = wire.dead_letter_headers(
        original,
        topic="orders",
        partition=3,
        offset=42,
        timestamp=1700,
        error=error,
        attempts=4,
        handler="Orders.on_created",
    )
    found = dict(headers)
    assert found["trace"] == b"t"
    assert found["kafka_dlt-original-topic"] == b"orders"
    assert found["kafka_dlt-original-partition"] == b"3"
    assert found["kafka_dlt-original-offset"] == b"42"
    assert found["kafka_dlt-original-timestamp"] == b"1700"
    assert found["kafka_dlt-exception-fqcn"] == b"builtins.ValueError"
    assert found["kafka_dlt-exception-message"] == b"x" * 4096
    assert b"ValueError" in found["kafka_dlt-exception-stacktrace"]
    assert found["kafka_deliveryAttempt"] == b"4"
    assert found["framework_dlt-handler"] == b"Orders.on_created"
    # An earlier failure's headers are replaced, not repeated.
    assert [k for k, _ in headers].count("kafka_deliveryAttempt") == 1


def test_headers_helpers() -> None:
    assert wire.encode_headers({"a": "1", "b": b"2"}) == [("a", b"1"), ("b", b"2")]
    assert wire.encode_headers(None) == []
    assert wire.decode_headers([("j", b'{"x":1}'), ("t", b"v")]) == {"j": {"x": 1}, "t": "v"}
    assert wire.header([("a", b"1"), ("a", b"2")], "a") == b"2"
    assert wire.header([], "a") is None

"""The Kafka wire format, compatible with NestJS's Kafka transport. Pure functions, no I/O.

Rules (from ``@nestjs/microservices`` 11: ``serializers/kafka-request.serializer``,
``helpers/kafka-parser``, ``server/server-kafka``, ``client/client-kafka``):

- Topic = pattern. Record values: ``None`` is a null value; ``bytes`` and ``str`` travel
  as they are (UTF-8); every other value is JSON (so ``42`` travels as ``42`` and
  ``"x"`` as ``x``, not ``"x"``), and a value whose JSON is ``null`` (``NaN``) is a
  null value. Replies and stream items are written from the dispatcher's JSON by the
  same rule (``json_value``).
- Reading a value (NestJS's parser): a value starting with byte 0x00 stays binary; one
  starting with ``{`` or ``[`` is JSON; anything else is a string. Handlers validate
  JSON straight from the bytes; pydantic turns ``"42"`` into ``42`` for an ``int``
  payload, as NestJS users expect.
- A request carries headers ``kafka_correlationId``, ``kafka_replyTopic`` and
  ``kafka_replyPartition`` (a decimal string). Without the first two it is an event.
- A reply goes to the reply topic and partition with ``kafka_correlationId``; an error
  reply adds ``kafka_nest-err`` (JSON for an object, else the text); the last reply of a
  request adds ``kafka_nest-is-disposed`` (one zero byte). A single value is one record
  with both the value and is-disposed.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core

from framework.messaging.codecs import encode

Headers = Sequence[tuple[str, bytes]]
"""Kafka record headers as aiokafka gives and takes them."""

CORRELATION_ID = "kafka_correlationId"
REPLY_TOPIC = "kafka_replyTopic"
REPLY_PARTITION = "kafka_replyPartition"
NEST_ERR = "kafka_nest-err"
NEST_IS_DISPOSED = "kafka_nest-is-disposed"
NO_VALUE = "framework_no-value"
"""Ours: marks an end-of-stream record that carries no item (NestJS clients ignore it)."""

DLT_ORIGINAL_TOPIC = "kafka_dlt-original-topic"
DLT_ORIGINAL_PARTITION = "kafka_dlt-original-partition"
DLT_ORIGINAL_OFFSET = "kafka_dlt-original-offset"
DLT_ORIGINAL_TIMESTAMP = "kafka_dlt-original-timestamp"
DLT_EXCEPTION_FQCN = "kafka_dlt-exception-fqcn"
DLT_EXCEPTION_MESSAGE = "kafka_dlt-exception-message"
DLT_EXCEPTION_STACKTRACE = "kafka_dlt-exception-stacktrace"
DELIVERY_ATTEMPT = "kafka_deliveryAttempt"
DLT_HANDLER = "framework_dlt-handler"
"""Ours: the handler that gave up on the record (several handlers may share a topic)."""

DISPOSED = b"\x00"
NO_HANDLER = "There is no matching message handler defined in the remote service."
"""NestJS's error text (sent as a plain string) for a request nobody handles."""

_OBJECT, _ARRAY, _QUOTE, _N = 0x7B, 0x5B, 0x22, 0x6E


# -- values --------------------------------------------------------------------------


def encode_value(value: Any) -> bytes | None:
    """A payload or reply as a record value, by NestJS's serializer rules.

    ``bytes`` and ``str`` travel as they are; anything else as ``json_value`` of its
    JSON (so ``NaN`` and ``None`` alike travel as a null value).

    Raises:
        pydantic_core.PydanticSerializationError: ``value`` cannot be encoded as JSON.
    """
    if value is None:
        return None
    cls = value.__class__
    if cls is bytes:
        return value  # type: ignore[no-any-return]
    if cls is str:
        return value.encode()  # type: ignore[no-any-return]
    return json_value(encode(value))


def json_value(data: bytes) -> bytes | None:
    """JSON (``codecs.encode`` of a reply or stream item) as a record value: JSON
    ``null`` is a null value and a JSON string travels as its text, without quotes (a
    model that serialises to a string is a string on this wire); the rest as it is."""
    if not data:
        return data
    first = data[0]
    if first == _QUOTE:
        return str(pydantic_core.from_json(data)).encode()
    if first == _N and data == b"null":
        return None
    return data


def payload(value: bytes | None) -> Any:
    """What a handler's validator receives for a record value (NestJS's parser rules).

    JSON objects and arrays stay bytes, so pydantic validates them without an
    intermediate ``dict``. Binary values (leading 0x00) stay bytes; any other value is
    a string.

    Raises:
        UnicodeDecodeError: a text value that is not UTF-8 (a poison record).
    """
    if value is None:
        return None
    if not value:
        return ""
    first = value[0]
    if first in (_OBJECT, _ARRAY, 0):
        return value
    return value.decode()


def decode_value(value: bytes | None) -> Any:
    """A record value or header decoded as NestJS's parser does.

    ``None`` stays ``None``; a leading 0x00 keeps the bytes; text starting with ``{`` or
    ``[`` is parsed as JSON (the text is kept if that fails); anything else is text
    (undecodable bytes stay bytes).
    """
    if value is None:
        return None
    if value[:1] == b"\x00":
        return value
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return value
    if text[:1] in ("{", "["):
        try:
            return pydantic_core.from_json(value)
        except ValueError:
            return text
    return text


def decode_reply_value(value: bytes | None) -> Any:
    """A reply value for a Python caller: NestJS's rules, plus JSON scalars.

    A NestJS or framework server sends ``6`` as the text ``6``; callers expect the
    number back, so text that parses as a JSON scalar (number, ``true``, ``false``,
    ``null``) is decoded; any other text stays a string.
    """
    if value is None:
        return None
    decoded = decode_value(value)
    if decoded.__class__ is not str or not decoded:
        return decoded
    first = decoded[0]
    if first.isdigit() or first in "-tfn":
        try:
            return pydantic_core.from_json(value)
        except ValueError:
            return decoded
    return decoded


# -- headers -------------------------------------------------------------------------


def decode_headers(headers: Headers) -> dict[str, Any]:
    """Record headers as a dict of decoded values (NestJS's parser rules); the last
    value wins when a name repeats."""
    return {name: decode_value(value) for name, value in headers}


def encode_headers(headers: Mapping[str, str | bytes] | None) -> list[tuple[str, bytes]]:
    """User headers for a record: strings as UTF-8, bytes as they are."""
    if not headers:
        return []
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in headers.items()]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Where a request wants its replies."""

    correlation_id: str
    reply_topic: str
    reply_partition: int | None


def request_info(headers: Headers) -> RequestInfo | None:
    """The request headers of a record, or ``None`` for an event (NestJS: a record
    without a correlation id or reply topic is an event)."""
    correlation_id = reply_topic = None
    partition: int | None = None
    for name, value in headers:
        if name == CORRELATION_ID:
            correlation_id = value.decode(errors="replace")
        elif name == REPLY_TOPIC:
            reply_topic = value.decode(errors="replace")
        elif name == REPLY_PARTITION:
            partition = _partition(value)
    if not correlation_id or not reply_topic:
        return None
    return RequestInfo(correlation_id, reply_topic, partition)


def _partition(value: bytes) -> int | None:
    # NestJS sends the partition as text and reads it with parseFloat.
    try:
        number = float(value.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return int(number) if number >= 0 and number == int(number) else None


def request_headers(
    correlation_id: str,
    reply_topic: str,
    reply_partition: int,
    extra: Mapping[str, str | bytes] | None = None,
) -> list[tuple[str, bytes]]:
    """Headers of a request record (user headers first, then NestJS's three)."""
    return [
        *encode_headers(extra),
        (CORRELATION_ID, correlation_id.encode()),
        (REPLY_TOPIC, reply_topic.encode()),
        (REPLY_PARTITION, str(reply_partition).encode()),
    ]


def encode_error(error: Any) -> bytes:
    """The ``kafka_nest-err`` header value: JSON for an object, else its text."""
    if isinstance(error, str):
        return error.encode()
    if isinstance(error, bytes):
        return error
    return encode(error)


def reply_headers(
    correlation_id: str,
    *,
    disposed: bool,
    error: Any = None,
    no_value: bool = False,
) -> list[tuple[str, bytes]]:
    """Headers of a reply record."""
    headers = [(CORRELATION_ID, correlation_id.encode())]
    if error is not None:
        headers.append((NEST_ERR, encode_error(error)))
    if disposed:
        headers.append((NEST_IS_DISPOSED, DISPOSED))
    if no_value:
        headers.append((NO_VALUE, b"1"))
    return headers


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply record as a client sees it.

    Attributes:
        correlation_id: the request it answers.
        value: the decoded item (``None`` when ``has_value`` is false).
        error: the error body (a dict; a text error becomes
            ``{"status": "error", "message": text}``), or ``None``.
        disposed: the last reply of the request.
        has_value: false for an end-of-stream record without an item.
    """

    correlation_id: str
    value: Any
    error: Any
    disposed: bool
    has_value: bool


def parse_reply(headers: Headers, value: bytes | None) -> Reply | None:
    """A reply record, or ``None`` if it carries no correlation id."""
    correlation_id = None
    error: Any = None
    disposed = False
    has_value = True
    for name, raw in headers:
        if name == CORRELATION_ID:
            correlation_id = raw.decode(errors="replace")
        elif name == NEST_ERR:
            error = decode_value(raw)
        elif name == NEST_IS_DISPOSED:
            disposed = True
        elif name == NO_VALUE:
            has_value = False
    if correlation_id is None:
        return None
    if error is not None:
        # NestJS: an error ends the request whatever the other headers say.
        if not isinstance(error, dict):
            error = {"status": "error", "message": str(error)}
        return Reply(correlation_id, None, error, True, False)
    if disposed and value is None:
        # A NestJS Observable that completes after its last item ends with a record of
        # its own: is-disposed and a null value. It is the end mark, not an item (NestJS's
        # client emits a trailing null for it; ours returns the last real item).
        has_value = False
    item = decode_reply_value(value) if has_value else None
    return Reply(correlation_id, item, None, disposed, has_value)


# -- dead letters --------------------------------------------------------------------


def dead_letter_headers(
    original: Headers,
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp: int,
    error: BaseException,
    attempts: int,
    handler: str = "",
    max_text: int = 4096,
) -> list[tuple[str, bytes]]:
    """The original headers plus Spring/NestJS dead-letter headers (UTF-8 decimal text).

    Earlier dead-letter headers are dropped, so a record dead-lettered twice carries the
    latest failure only. ``max_text`` bounds the message and stack trace, in characters.
    """
    kept = [(k, v) for k, v in original if k not in _DLT_NAMES]
    cls = type(error)
    fqcn = f"{cls.__module__}.{cls.__qualname__}"
    message = str(error)
    # Frames first, then a short exception line, so a long message cannot push the
    # frames out of the bounded text.
    frames = "".join(traceback.format_tb(error.__traceback__))
    trace = f"Traceback (most recent call last):\n{frames}{fqcn}: {message[: max_text // 4]}"
    return [
        *kept,
        (DLT_ORIGINAL_TOPIC, topic.encode()),
        (DLT_ORIGINAL_PARTITION, str(partition).encode()),
        (DLT_ORIGINAL_OFFSET, str(offset).encode()),
        (DLT_ORIGINAL_TIMESTAMP, str(timestamp).encode()),
        (DLT_EXCEPTION_FQCN, fqcn.encode()),
        (DLT_EXCEPTION_MESSAGE, message[:max_text].encode()),
        (DLT_EXCEPTION_STACKTRACE, trace[-max_text:].encode()),
        (DELIVERY_ATTEMPT, str(attempts).encode()),
        *([(DLT_HANDLER, handler.encode())] if handler else []),
    ]


_DLT_NAMES = frozenset(
    {
        DLT_ORIGINAL_TOPIC,
        DLT_ORIGINAL_PARTITION,
        DLT_ORIGINAL_OFFSET,
        DLT_ORIGINAL_TIMESTAMP,
        DLT_EXCEPTION_FQCN,
        DLT_EXCEPTION_MESSAGE,
        DLT_EXCEPTION_STACKTRACE,
        DELIVERY_ATTEMPT,
        DLT_HANDLER,
    }
)


def header(headers: Iterable[tuple[str, bytes]], name: str) -> bytes | None:
    """The last value of header ``name``, or ``None``."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found

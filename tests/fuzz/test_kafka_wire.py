"""Generated Kafka record values and headers through the wire decoders
(``framework/transports/kafka/wire.py``): every decoder returns a value of its
documented kind and never raises, except ``payload``'s documented ``UnicodeDecodeError``
for a text value that is not UTF-8; encoding then decoding gives the value back."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from framework.transports.kafka import wire
from tests.fuzz.strategies import json_values

values = st.one_of(
    st.none(), st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())
)
header_names = st.one_of(
    st.sampled_from(
        [wire.CORRELATION_ID, wire.REPLY_TOPIC, wire.REPLY_PARTITION, wire.NEST_ERR,
         wire.NEST_IS_DISPOSED, wire.NO_VALUE]
    ),
    st.text(max_size=12),
)  # fmt: skip
headers = st.lists(st.tuples(header_names, st.binary(max_size=40)), max_size=8)


@given(values)
def test_value_decoders_never_raise(value: bytes | None) -> None:
    decoded = wire.decode_value(value)
    assert decoded is None or isinstance(decoded, str | bytes | dict | list)
    wire.decode_reply_value(value)
    try:
        wire.payload(value)
    except UnicodeDecodeError:
        assert value is not None and value[:1] not in (b"{", b"[", b"\x00")


@given(headers, values)
def test_header_decoders_never_raise(hs: list[tuple[str, bytes]], value: bytes | None) -> None:
    assert isinstance(wire.decode_headers(hs), dict)
    info = wire.request_info(hs)
    if info is not None:
        assert info.correlation_id and info.reply_topic
        assert info.reply_partition is None or info.reply_partition >= 0
    reply = wire.parse_reply(hs, value)
    if reply is not None and reply.error is not None:
        assert isinstance(reply.error, dict) and reply.disposed


@given(json_values)
def test_an_encoded_value_decodes_to_itself(value: Any) -> None:
    encoded = wire.encode_value(value)
    decoded = wire.decode_reply_value(encoded)
    if isinstance(value, str) and value == "":
        assert decoded in ("", None)
    else:
        assert decoded == value or (isinstance(value, str) and decoded == value)

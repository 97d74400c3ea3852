"""Engine.IO v4 and Socket.IO v5 packets as plain functions: parsing and building, no I/O.

Engine.IO packets are text: a type digit, then the data. Over WebSocket each frame is
one packet (a binary frame is a binary attachment); over HTTP long-polling a body holds
several, separated by ``\\x1e``, and a binary one travels as ``b`` + base64.

A Socket.IO packet rides in an Engine.IO MESSAGE (``4``)::

    <type>[<attachments>-][/<namespace>,][<ack id>][<JSON>]

for example ``2["chat",{"text":"hi"}]``, ``2/admin,17["join","r1"]`` (an event asking
for acknowledgement 17 in namespace ``/admin``), ``3/admin,17["ok"]`` (its ack),
``0{"token":"x"}`` (connect with an auth payload), ``4{"message":"Forbidden"}`` (connect
refused). The outbound builders join pre-encoded JSON strings, so a payload is encoded
once whatever the number of receivers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pydantic_core

# Engine.IO packet types (one character each).
EIO_OPEN = "0"
EIO_CLOSE = "1"
EIO_PING = "2"
EIO_PONG = "3"
EIO_MESSAGE = "4"
EIO_UPGRADE = "5"
EIO_NOOP = "6"
RECORD_SEPARATOR = "\x1e"

# Socket.IO packet types.
CONNECT = 0
DISCONNECT = 1
EVENT = 2
ACK = 3
CONNECT_ERROR = 4
BINARY_EVENT = 5
BINARY_ACK = 6

_from_json = pydantic_core.from_json
_to_json = pydantic_core.to_json


class PacketError(Exception):
    """A packet that breaks the protocol; the connection that sent it is closed."""


@dataclass(slots=True)
class Packet:
    """A decoded Socket.IO packet.

    Attributes:
        type: ``CONNECT`` ... ``BINARY_ACK``.
        namespace: ``"/"`` unless the packet names one.
        id: the ack id, or ``None``.
        data: the decoded JSON (``[event, *args]`` for events, ``[*args]`` for acks,
            the auth payload for a connect), or ``None``.
        attachments: binary attachments still to come (binary packets only).
    """

    type: int
    namespace: str
    id: int | None
    data: Any
    attachments: int = 0


def decode_event(text: str) -> tuple[int | None, list[Any]] | None:
    """The hot path: ``(ack id, [name, *args])`` of an EVENT in the default namespace
    (``2[...]`` or ``2<id>[...]``); ``None`` for any other packet (use ``decode``)."""
    if text[:1] != "2":
        return None
    bracket = text.find("[", 1, 18)
    if bracket < 0:
        return None
    digits = text[1:bracket]
    if digits and not digits.isdigit():
        return None  # a namespace, or something ``decode`` should refuse
    try:
        data = _from_json(text[bracket:])
    except ValueError:
        raise PacketError("a packet whose data is not JSON") from None
    if data.__class__ is not list or not data or data[0].__class__ is not str:
        raise PacketError('an event is a JSON array starting with its name: ["name", ...]')
    return (int(digits) if digits else None), data


def decode(text: str) -> Packet:
    """The Socket.IO packet in the data of an Engine.IO MESSAGE; ``PacketError`` when it
    is not one."""
    if not text or not "0" <= text[0] <= "6":
        raise PacketError("unknown Socket.IO packet type")
    kind = ord(text[0]) - 48
    i = 1
    n = len(text)
    attachments = 0
    if kind in (BINARY_EVENT, BINARY_ACK):
        dash = text.find("-", 1)
        count = text[1:dash]
        if dash < 0 or not count.isdigit() or len(count) > 3:
            raise PacketError("a binary packet without its attachment count")
        attachments = int(count)
        i = dash + 1
    namespace = "/"
    if i < n and text[i] == "/":
        comma = text.find(",", i)
        if comma < 0:
            namespace, i = text[i:], n
        else:
            namespace, i = text[i:comma], comma + 1
    start = i
    while i < n and "0" <= text[i] <= "9":
        i += 1
    ack_id: int | None = None
    if i > start:
        if i - start > 15:
            raise PacketError("an ack id longer than 15 digits")
        ack_id = int(text[start:i])
    data: Any = None
    if i < n:
        try:
            data = _from_json(text[i:])
        except ValueError:
            raise PacketError("a packet whose data is not JSON") from None
    if kind in (EVENT, BINARY_EVENT):
        if data.__class__ is not list or not data or data[0].__class__ is not str:
            raise PacketError('an event is a JSON array starting with its name: ["name", ...]')
    elif kind in (ACK, BINARY_ACK):
        if data.__class__ is not list or ack_id is None:
            raise PacketError("an ack is an id and a JSON array")
    elif kind == CONNECT and data is not None and data.__class__ is not dict:
        raise PacketError("a connect payload is a JSON object")
    return Packet(kind, namespace, ack_id, data, attachments)


def fill_placeholders(data: Any, attachments: list[bytes]) -> Any:
    """``data`` with every ``{"_placeholder": true, "num": k}`` replaced by attachment k."""
    if data.__class__ is list:
        return [fill_placeholders(item, attachments) for item in data]
    if data.__class__ is dict:
        if data.get("_placeholder") is True and len(data) == 2:
            num = data.get("num")
            if num.__class__ is not int or not 0 <= num < len(attachments):
                raise PacketError("a binary placeholder without its attachment")
            return attachments[num]
        return {k: fill_placeholders(v, attachments) for k, v in data.items()}
    return data


def decode_polling_body(body: bytes) -> list[str | bytes]:
    """The Engine.IO packets of a long-polling POST body (binary ones as bytes)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise PacketError("a polling body is UTF-8 text") from None
    packets: list[str | bytes] = []
    for part in text.split(RECORD_SEPARATOR):
        if part.startswith("b"):
            try:
                packets.append(base64.b64decode(part[1:], validate=True))
            except ValueError:
                raise PacketError("a binary polling packet is not base64") from None
        else:
            packets.append(part)
    return packets


def encode_polling_body(packets: list[str | bytes]) -> bytes:
    return RECORD_SEPARATOR.join(
        p if isinstance(p, str) else "b" + base64.b64encode(p).decode() for p in packets
    ).encode()


# -- outbound: whole Engine.IO MESSAGE packets, ready to write -------------------------


def prefix(namespace: str) -> str:
    """What comes between the packet type and the ack id / JSON for ``namespace``."""
    return "" if namespace == "/" else namespace + ","


def event(pfx: str, name_json: str, args_json: str, ack_id: int | None = None) -> str:
    """``42[<name>,<args>]``: an event (``args_json``: the arguments' JSON joined by commas,
    or empty); with ``ack_id`` the server asks the client to acknowledge it."""
    sep = "," if args_json else ""
    ack = "" if ack_id is None else str(ack_id)
    return f"42{pfx}{ack}[{name_json}{sep}{args_json}]"


def ack(pfx: str, ack_id: int, args_json: str) -> str:
    """``43<id>[<args>]``: the acknowledgement of the client's event ``ack_id``."""
    return f"43{pfx}{ack_id}[{args_json}]"


def connect_ok(pfx: str, payload: dict[str, Any]) -> str:
    return "40" + pfx + _to_json(payload).decode()


def connect_error(pfx: str, message: str, data: Any = None) -> str:
    body: dict[str, Any] = {"message": message}
    if data is not None:
        body["data"] = data
    return "44" + pfx + _to_json(body).decode()


def disconnect(pfx: str) -> str:
    return "41" + pfx


def name_json(name: str) -> str:
    """An event name as JSON (names are short and repeat: callers may cache this)."""
    return _to_json(name).decode()

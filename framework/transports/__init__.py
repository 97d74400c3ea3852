"""Transports: ``base`` is the public contract; one module per transport.

Everything a transport author needs is importable from here (see
docs/writing-a-transport.md): the contracts; the ``Dispatcher`` that turns a decoded
``Inbound`` message into an ``Outcome`` (``Reply``, ``Stream``, ``Failure``,
``NOT_FOUND``, ``Handled``); ``drive``, which runs a streamed reply into a transport's
``Respond``; the context handlers receive; the error-reply mapping; the JSON codec; and
discovery by name through the ``framework.transports`` entry point group. Concrete
transports stay in their own modules (``framework.transports.kafka`` ...), imported only
when used.
"""

from framework.messaging._patterns import is_wildcard
from framework.messaging.codecs import decode, encode
from framework.messaging.context import MessageContext
from framework.messaging.dispatch import (
    NOT_FOUND,
    Dispatcher,
    Failure,
    Handled,
    Inbound,
    Outcome,
    Reply,
    Route,
    Stream,
    last_reply,
)
from framework.messaging.errors import error_payload
from framework.messaging.router import MessageHandler, Router
from framework.messaging.streams import Respond, drive, is_stream
from framework.transports.base import (
    ClientProxy,
    HeaderHook,
    PublishRelay,
    Transport,
    TransportEvents,
    TransportHost,
)
from framework.transports.registry import available_transports, load_transport, transport_class

__all__ = [
    "NOT_FOUND",
    "ClientProxy",
    "Dispatcher",
    "Failure",
    "Handled",
    "HeaderHook",
    "Inbound",
    "MessageContext",
    "MessageHandler",
    "Outcome",
    "PublishRelay",
    "Reply",
    "Respond",
    "Route",
    "Router",
    "Stream",
    "Transport",
    "TransportEvents",
    "TransportHost",
    "available_transports",
    "decode",
    "drive",
    "encode",
    "error_payload",
    "is_stream",
    "is_wildcard",
    "last_reply",
    "load_transport",
    "transport_class",
]

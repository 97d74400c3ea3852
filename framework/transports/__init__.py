"""Transports: ``base`` is the public contract; one module per transport.

Everything a transport author needs is importable from here (see
docs/writing-a-transport.md): the contracts, the router API a transport calls, the
context handlers receive, the error-reply mapping, the JSON codec, and discovery by name
through the ``framework.transports`` entry point group. Concrete transports stay in their
own modules (``framework.transports.kafka`` ...), imported only when used.
"""

from framework.messaging.codecs import decode, encode
from framework.messaging.context import MessageContext
from framework.messaging.errors import error_payload
from framework.messaging.patterns import is_wildcard
from framework.messaging.router import MessageHandler, Router, run_event_handlers
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
    "ClientProxy",
    "HeaderHook",
    "MessageContext",
    "MessageHandler",
    "PublishRelay",
    "Router",
    "Transport",
    "TransportEvents",
    "TransportHost",
    "available_transports",
    "decode",
    "encode",
    "error_payload",
    "is_wildcard",
    "load_transport",
    "run_event_handlers",
    "transport_class",
]

"""Pattern metadata, the compiled router, the pipeline, codecs and contexts."""

from framework.messaging._decorators import event_pattern, message_pattern
from framework.messaging.context import ExecutionContext, MessageContext
from framework.messaging.responses import WsResponse
from framework.messaging.streams import map_items

__all__ = [
    "ExecutionContext",
    "MessageContext",
    "WsResponse",
    "event_pattern",
    "map_items",
    "message_pattern",
]

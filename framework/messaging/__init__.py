"""Pattern metadata, the compiled router, the pipeline, codecs and contexts."""

from framework.messaging._decorators import event_pattern, message_pattern
from framework.messaging.context import ExecutionContext, MessageContext
from framework.messaging.responses import WsResponse

__all__ = ["ExecutionContext", "MessageContext", "WsResponse", "event_pattern", "message_pattern"]

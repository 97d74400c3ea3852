"""A Redis Streams transport written only against ``framework.transports``.

``RedisStreamsTransport`` serves handlers from streams with a consumer group (at least
once); ``RedisStreamsClient`` sends requests, streams and events to it. See README.md
beside this file for the wire format, the limits and what each failure does.
"""

from .client import RedisStreamsClient
from .context import RedisStreamsContext
from .transport import RedisStreamsTransport
from .wire import NAME

__all__ = ["NAME", "RedisStreamsClient", "RedisStreamsContext", "RedisStreamsTransport"]

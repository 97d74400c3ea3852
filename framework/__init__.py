"""A NestJS-style modular server framework: modules, DI, message patterns on every transport.

The public surface is what ``__all__`` lists; everything else is internal.
"""

from framework.application import Application, create_app
from framework.clients import ClientsModule
from framework.di import (
    REQUEST,
    DynamicModule,
    Inject,
    InjectionToken,
    Provider,
    Scope,
    controller,
    forward_ref,
    injectable,
    module,
)
from framework.exceptions import (
    ConfigurationError,
    DependencyCycleError,
    ForbiddenException,
    FrameworkError,
    HttpException,
    NotFoundException,
    PatternNotFoundError,
    RemoteError,
    RequestTimeoutError,
    RpcException,
    StreamOverflowError,
    TransportError,
)
from framework.http._decorators import delete, get, patch, post, put, sse
from framework.http._sse import ServerSentEvent
from framework.messaging._decorators import (
    event_pattern,
    message_pattern,
    use_filters,
    use_guards,
    use_interceptors,
    use_pipes,
)
from framework.messaging._gateway import subscribe_message, websocket_gateway
from framework.messaging.context import ExecutionContext, MessageContext
from framework.messaging.router import HandlerMiddleware
from framework.messaging.streams import map_items
from framework.transports.base import ClientProxy, Transport

__version__ = "0.2.0"
"""The release (pyproject.toml reads it from here: one place to change)."""

__all__ = [
    "REQUEST",
    "Application",
    "ClientProxy",
    "ClientsModule",
    "ConfigurationError",
    "DependencyCycleError",
    "DynamicModule",
    "ExecutionContext",
    "ForbiddenException",
    "FrameworkError",
    "HandlerMiddleware",
    "HttpException",
    "Inject",
    "InjectionToken",
    "MessageContext",
    "NotFoundException",
    "PatternNotFoundError",
    "Provider",
    "RemoteError",
    "RequestTimeoutError",
    "RpcException",
    "Scope",
    "ServerSentEvent",
    "StreamOverflowError",
    "Transport",
    "TransportError",
    "controller",
    "create_app",
    "delete",
    "event_pattern",
    "forward_ref",
    "get",
    "injectable",
    "map_items",
    "message_pattern",
    "module",
    "patch",
    "post",
    "put",
    "sse",
    "subscribe_message",
    "use_filters",
    "use_guards",
    "use_interceptors",
    "use_pipes",
    "websocket_gateway",
]

"""The framework's one exception tree.

Configuration problems are found at start-up and say what to change; runtime errors carry
what the remote caller or HTTP client should see.
"""

from __future__ import annotations

from typing import Any


class FrameworkError(Exception):
    """Base class of every error the framework raises."""


class ConfigurationError(FrameworkError):
    """The app is wired wrongly (a missing provider, a cycle, a bad decorator use).

    Raised at start-up, never per message. The message names what to add or change.
    """


class DependencyCycleError(ConfigurationError):
    """Providers or modules depend on each other in a cycle; the message prints the path."""


class RpcException(FrameworkError):
    """An error a handler raises on purpose; the caller receives it as the error reply.

    A string becomes ``{"status": "error", "message": error}``; a dict is sent as it is
    (NestJS's convention), so a handler can add fields such as a code.
    """

    def __init__(self, error: str | dict[str, Any]) -> None:
        self.error = error
        super().__init__(error if isinstance(error, str) else error.get("message", error))

    def to_payload(self) -> dict[str, Any]:
        """The error body as it travels on the wire."""
        if isinstance(self.error, dict):
            return self.error
        return {"status": "error", "message": self.error}


class HttpException(FrameworkError):
    """An HTTP error with a status code; on message transports it becomes an RPC error."""

    def __init__(self, status_code: int, message: str | dict[str, Any] = "") -> None:
        self.status_code = status_code
        self.message = message
        super().__init__(message if isinstance(message, str) else repr(message))


class ForbiddenException(HttpException):
    """A guard refused the call (HTTP 403; NestJS's message text)."""

    def __init__(self, message: str = "Forbidden resource") -> None:
        super().__init__(403, message)


class NotFoundException(HttpException):
    """HTTP 404."""

    def __init__(self, message: str = "Not Found") -> None:
        super().__init__(404, message)


class PatternNotFoundError(FrameworkError):
    """No handler matches a message pattern (the text is NestJS's, for interop)."""

    MESSAGE = "There is no matching message handler defined in the remote service."

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        super().__init__(self.MESSAGE)


class RequestTimeoutError(FrameworkError, TimeoutError):
    """A ``ClientProxy.send`` got no reply within its timeout."""

    def __init__(self, pattern: str, timeout: float) -> None:
        self.pattern = pattern
        self.timeout = timeout
        super().__init__(
            f"No reply to {pattern!r} within {timeout:g} s; is a service handling it running?"
        )


class RemoteError(FrameworkError):
    """The remote handler answered with an error; ``payload`` is the error body it sent."""

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        message = payload.get("message") if isinstance(payload, dict) else payload
        super().__init__(str(message))


class TransportError(FrameworkError):
    """A transport could not start, connect or deliver."""


class StreamOverflowError(RpcException):
    """A pushing stream source (an Observable) got more items ahead of its receiver than
    its bridge buffer holds, under the ``"fail"`` overflow policy; the caller gets this
    message as the stream's error reply."""

    def __init__(self, buffer_size: int) -> None:
        self.buffer_size = buffer_size
        super().__init__(
            f"Stream overflow: the source got more than {buffer_size} items ahead of the receiver"
        )

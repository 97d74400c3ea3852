"""The HTTP server's default limits (no imports: ``Application`` reads them at import)."""

DEFAULT_MAX_BODY = 1024 * 1024
"""Bytes a request body may have unless a route or transport says otherwise."""

HEADER_TIMEOUT = 10.0
"""Seconds a client has to send its request headers (and finish a WebSocket handshake)."""

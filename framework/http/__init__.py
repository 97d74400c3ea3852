"""Starlette integration: routes, parameter binding, event streams."""

from framework.http._decorators import delete, get, patch, post, put, sse

__all__ = ["delete", "get", "patch", "post", "put", "sse"]

"""Starlette integration: routes, parameter binding, event streams, OpenAPI."""

from framework.http._decorators import delete, get, patch, post, put, sse
from framework.http._openapi import build_openapi, mount_openapi, openapi_document

__all__ = [
    "build_openapi",
    "delete",
    "get",
    "mount_openapi",
    "openapi_document",
    "patch",
    "post",
    "put",
    "sse",
]

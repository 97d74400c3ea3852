"""AsyncAPI 3.0.0 documents of an app's message and event handlers.

``await build_asyncapi(app)`` makes the document (JSON-ready data), ``to_yaml`` and
``render_html`` write it, ``mount_asyncapi(app)`` serves it, and ``framework asyncapi
module:app`` prints it. See docs/asyncapi.md.
"""

from framework.asyncapi._document import ASYNCAPI_VERSION, asyncapi_document, build_asyncapi
from framework.asyncapi._html import render_html
from framework.asyncapi._serve import mount_asyncapi
from framework.asyncapi._yaml import to_yaml

__all__ = [
    "ASYNCAPI_VERSION",
    "asyncapi_document",
    "build_asyncapi",
    "mount_asyncapi",
    "render_html",
    "to_yaml",
]

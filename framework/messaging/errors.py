"""What a caller receives when a handler fails: one mapping for every transport.

- ``RpcException(x)``: ``{"status": "error", "message": x}`` (a dict error is sent as is).
- a payload that fails validation: ``{"status": "error", "message": "Validation failed",
  "errors": [...pydantic's error list...]}``; malformed JSON says "Malformed JSON payload".
- an unknown pattern: NestJS's text, "There is no matching message handler defined in
  the remote service."
- ``HttpException``: its message plus ``"statusCode"``.
- anything else: logged with its traceback; the caller gets "Internal server error".
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from framework.exceptions import HttpException, PatternNotFoundError, RpcException

logger = logging.getLogger("framework.messaging")

INTERNAL_ERROR = {"status": "error", "message": "Internal server error"}


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's error list, JSON-safe (contexts may hold exception objects).

    Each error carries the offending input, except when the input cannot be JSON (bytes
    that are not UTF-8, from an HTTP body or a Kafka record): then no error carries it.
    """
    try:
        text = exc.json(include_url=False)
    except ValueError:
        text = exc.json(include_url=False, include_input=False)
    errors: list[dict[str, Any]] = json.loads(text)
    return errors


def is_malformed_json(exc: ValidationError) -> bool:
    return all(err["type"] == "json_invalid" for err in exc.errors())


def error_payload(exc: BaseException, *, where: str = "", log: bool = True) -> dict[str, Any]:
    """The error reply for ``exc``; unexpected errors are logged here, once (``log=False``
    when the caller logged it already)."""
    if isinstance(exc, RpcException):
        return exc.to_payload()
    if isinstance(exc, ValidationError):
        message = "Malformed JSON payload" if is_malformed_json(exc) else "Validation failed"
        return {"status": "error", "message": message, "errors": validation_errors(exc)}
    if isinstance(exc, PatternNotFoundError):
        return {"status": "error", "message": exc.MESSAGE}
    if isinstance(exc, HttpException):
        body = exc.message if isinstance(exc.message, dict) else {"message": exc.message}
        return {"status": "error", **body, "statusCode": exc.status_code}
    if log:
        logger.error("Handler %s failed", where or "?", exc_info=exc)
    return dict(INTERNAL_ERROR)

"""Pattern matching: exact patterns and dot-separated wildcards.

``*`` matches exactly one segment (``orders.*`` matches ``orders.created``, not
``orders.eu.created``); ``#`` as the last segment matches one or more segments
(``orders.#`` matches both). Pure functions, tested without an event loop.

Precedence when several patterns match one name: an exact pattern first; then wildcard
patterns by specificity (more literal segments first, then ``*`` before ``#``, then
declaration order). Request/reply uses the first; events go to every match in that order.
"""

from __future__ import annotations

import re
from functools import lru_cache

from framework.exceptions import ConfigurationError


def is_wildcard(pattern: str) -> bool:
    return any(seg in ("*", "#") for seg in pattern.split("."))


def validate_pattern(pattern: str) -> None:
    if not pattern:
        raise ConfigurationError("A message pattern cannot be empty")
    segments = pattern.split(".")
    if "#" in segments[:-1]:
        raise ConfigurationError(f"Pattern {pattern!r}: '#' may only be the last segment")


MAX_SUBSCRIBED_PATTERN = 256
"""Longest pattern, in characters, a client may subscribe to (WebSocket, SSE): with
the per-connection pattern counts, it bounds the bytes one subscriber holds."""


def validate_subscription(pattern: str) -> None:
    """``validate_pattern`` for a pattern a client sends, which is also bounded in length."""
    if len(pattern) > MAX_SUBSCRIBED_PATTERN:
        raise ConfigurationError(
            f"A subscribed pattern has at most {MAX_SUBSCRIBED_PATTERN} characters"
        )
    validate_pattern(pattern)


@lru_cache(maxsize=1024)
def compile_wildcard(pattern: str) -> re.Pattern[str]:
    """A regex for a wildcard pattern (also what Kafka topic subscriptions use)."""
    parts = []
    for seg in pattern.split("."):
        if seg == "*":
            parts.append(r"[^.]+")
        elif seg == "#":
            parts.append(r"[^.]+(?:\.[^.]+)*")
        else:
            parts.append(re.escape(seg))
    return re.compile(r"\.".join(parts) + r"\Z")


def specificity(pattern: str) -> tuple[int, int]:
    """Sort key: lower sorts first (more specific)."""
    segments = pattern.split(".")
    literal = sum(1 for s in segments if s not in ("*", "#"))
    return (-literal, 1 if "#" in segments else 0)


def matches(pattern: str, name: str) -> bool:
    if not is_wildcard(pattern):
        return pattern == name
    return compile_wildcard(pattern).match(name) is not None

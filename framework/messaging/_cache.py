"""The one cache of values computed per name that came from outside (an event name, a
topic, a published pattern): route lookups, wildcard matches, encoded frame prefixes.

Senders choose these names, so the cache is bounded twice: in entries (it is emptied
when full) and in what one key may hold (names longer than ``MAX_CACHED_NAME`` are
computed every time and never kept; 10,000 names of 1 MiB would be 10 GiB).
"""

from __future__ import annotations

from typing import TypeVar

V = TypeVar("V")

MAX_CACHED_NAME = 256
"""Longest name, in characters, a cache keeps."""

MAX_ENTRIES = 10_000
"""Entries a cache holds before it is emptied."""


class NameCache(dict[str, V]):
    """A ``dict`` (reads are plain, fast ``get``/``[]``) whose writes go through ``keep``."""

    __slots__ = ("max_entries",)

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        super().__init__()
        self.max_entries = max_entries

    def keep(self, name: str, value: V) -> V:
        """Cache ``value`` for ``name`` within the bounds; returns ``value``."""
        if len(name) <= MAX_CACHED_NAME:
            if len(self) >= self.max_entries:
                self.clear()
            self[name] = value
        return value

"""Windowed aggregation per record key, by event time. Pure: no I/O, no clock.

A window handler's results are folded, per record key, into the windows its record's
timestamp falls in (``TumblingWindow``, ``HoppingWindow``, ``SessionWindow``). A
partition's *stream time* is the largest record timestamp seen; a window closes once
stream time reaches its end plus the grace period, and is then emitted and forgotten. A
record whose every window has closed is *late*: dropped and counted.

``WindowStore`` is one partition's state for one handler. It remembers what changed
since the last ``drain``, which returns the changelog entries (key, value or ``None`` for
a deletion) to write to a compacted topic: one per changed window however many records
changed it, so the transport writes them once per batch; ``restore`` reads them back.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from framework.exceptions import ConfigurationError, TransportError

Reducer = Callable[[Any, Any], Any]
"""``reducer(aggregate, value) -> aggregate``; ``aggregate`` is ``None`` for a new
window. Aggregates must be JSON values (they travel on the changelog)."""


def _count(acc: Any, value: Any) -> Any:
    return (acc or 0) + 1


def _sum(acc: Any, value: Any) -> Any:
    return (acc or 0) + value


AGGREGATES: dict[str, Reducer] = {"count": _count, "sum": _sum}


def reducer_of(aggregate: str | Reducer, owner: str) -> Reducer:
    if callable(aggregate):
        return aggregate
    found = AGGREGATES.get(aggregate)
    if found is None:
        raise ConfigurationError(
            f"{owner}: aggregate= is 'count', 'sum' or a reducer(aggregate, value), "
            f"not {aggregate!r}"
        )
    return found


@dataclass(frozen=True, slots=True)
class TumblingWindow:
    """Fixed windows of ``size`` seconds, back to back: ``[k*size, (k+1)*size)``.

    Attributes:
        size: seconds per window.
        grace: seconds a window stays open after its end for late records.
    """

    size: float
    grace: float = 0.0

    def __post_init__(self) -> None:
        _check(self.size, self.grace)


@dataclass(frozen=True, slots=True)
class HoppingWindow:
    """Windows of ``size`` seconds starting every ``advance`` seconds (they overlap
    when ``advance < size``; a record counts in each window it falls in).

    Attributes:
        size: seconds per window.
        advance: seconds between window starts, at most ``size``.
        grace: seconds a window stays open after its end for late records.
    """

    size: float
    advance: float
    grace: float = 0.0

    def __post_init__(self) -> None:
        _check(self.size, self.grace)
        if not 0 < self.advance <= self.size:
            raise ConfigurationError("HoppingWindow advance must be > 0 and at most size")


@dataclass(frozen=True, slots=True)
class SessionWindow:
    """Per key, records less than ``gap`` seconds apart share a window; a window spans
    its first to its last record and closes ``gap`` (plus ``grace``) after the last.

    Attributes:
        gap: seconds of inactivity that end a session.
        grace: seconds a session stays open after that for late records.
    """

    gap: float
    grace: float = 0.0

    def __post_init__(self) -> None:
        _check(self.gap, self.grace)


Window = TumblingWindow | HoppingWindow | SessionWindow


def _check(size: float, grace: float) -> None:
    if size <= 0:
        raise ConfigurationError(f"window size must be positive, not {size}")
    if grace < 0:
        raise ConfigurationError(f"window grace must be 0 or more, not {grace}")


@dataclass(slots=True)
class Closed:
    """A window that closed: what is emitted for it."""

    key: bytes | None
    start: int
    end: int
    value: Any

    def as_json(self) -> dict[str, Any]:
        return {
            "key": None if self.key is None else self.key.decode(errors="replace"),
            "start": self.start,
            "end": self.end,
            "value": self.value,
        }


Change = tuple[bytes, bytes | None]
"""A changelog entry: key, and the JSON value (``None``: deleted)."""

_TIME = b"t"


def _entry_key(key: bytes | None, start: int) -> bytes:
    return b"w|%d|" % start + (b"n" if key is None else b"k" + key)


def _parse_key(raw: bytes) -> tuple[bytes | None, int]:
    _, start, rest = raw.split(b"|", 2)
    return (None if rest == b"n" else rest[1:]), int(start)


class WindowStore:
    """One partition's windows of one handler.

    Args:
        window: the window kind.
        reducer: folds values into a window's aggregate.
        max_windows: open windows at most; a record that would open one more fails.

    Attributes:
        stream_time: the largest record timestamp seen (ms), -1 before any.
        late: records dropped as late.
        closed_count: windows closed.
    """

    def __init__(self, window: Window, reducer: Reducer, *, max_windows: int) -> None:
        self.window = window
        self.reducer = reducer
        self.max_windows = max_windows
        self.stream_time = -1
        self.late = 0
        self.closed_count = 0
        # (key, start) -> [end, aggregate]
        self._open: dict[tuple[bytes | None, int], list[Any]] = {}
        self._deadlines: list[tuple[int, int, bytes, bytes | None]] = []  # a heap
        self._grace = int(window.grace * 1000)
        self._gap = int(window.gap * 1000) if isinstance(window, SessionWindow) else 0
        self._dirty: set[tuple[bytes | None, int]] = set()
        self._time_dirty = False

    def __len__(self) -> int:
        return len(self._open)

    # -- records ---------------------------------------------------------------------

    def add(self, key: bytes | None, timestamp: int, value: Any) -> list[Closed]:
        """Fold ``value`` (of a record with ``key`` at ``timestamp`` ms) in; returns the
        windows that closed since (as stream time moved). A late record changes nothing
        but ``late``.

        Raises:
            TransportError: it would open more than ``max_windows`` windows.
        """
        changes = self._dirty
        window = self.window
        if isinstance(window, SessionWindow):
            accepted = self._session(key, timestamp, value, changes)
        else:
            accepted = False
            for start, end in _windows_of(window, timestamp):
                if end + self._grace <= self.stream_time:
                    continue  # this one closed already
                self._fold(key, start, end, value, changes)
                accepted = True
        if not accepted:
            self.late += 1
        if timestamp > self.stream_time:
            self.stream_time = timestamp
            self._time_dirty = True
        return self._close(changes)

    def _fold(self, key: bytes | None, start: int, end: int, value: Any, changes: set[Any]) -> None:
        slot = self._open.get((key, start))
        if slot is None:
            if len(self._open) >= self.max_windows:
                self._full()
            slot = self._open[(key, start)] = [end, None]
            heapq.heappush(self._deadlines, (end + self._grace, start, key or b"", key))
        slot[1] = self.reducer(slot[1], value)
        changes.add((key, start))

    def _session(self, key: bytes | None, timestamp: int, value: Any, changes: set[Any]) -> bool:
        gap = self._gap
        # The open sessions of this key within ``gap`` of the record merge with it.
        touching = [
            (start, slot)
            for (k, start), slot in self._open.items()
            if k == key and start - gap <= timestamp <= slot[0] + gap
        ]
        if not touching and timestamp + gap + self._grace <= self.stream_time:
            return False  # its session would have closed already
        start, end, acc = timestamp, timestamp, None
        for old, slot in touching:
            start, end = min(start, old), max(end, slot[0])
            acc = slot[1] if acc is None else _merge(self.reducer, acc, slot[1])
            del self._open[(key, old)]
        if not touching and len(self._open) >= self.max_windows:
            self._full()
        slot = self._open[(key, start)] = [end, self.reducer(acc, value)]
        heapq.heappush(self._deadlines, (end + gap + self._grace, start, key or b"", key))
        changes.add((key, start))
        changes.update((key, old) for old, _ in touching)
        return True

    def _full(self) -> None:
        raise TransportError(
            f"window state is full ({self.max_windows} open windows in this partition); "
            "raise max_windows or shorten the windows"
        )

    def _close(self, changes: set[Any]) -> list[Closed]:
        closed: list[Closed] = []
        deadlines, now, gap = self._deadlines, self.stream_time, self._gap
        while deadlines and deadlines[0][0] <= now:
            deadline, start, _, key = heapq.heappop(deadlines)
            slot = self._open.get((key, start))
            if slot is None or slot[0] + gap + self._grace != deadline:
                continue  # merged into another session, or extended
            del self._open[(key, start)]
            closed.append(Closed(key, start, slot[0], slot[1]))
            changes.add((key, start))
        self.closed_count += len(closed)
        return closed

    # -- changelog -------------------------------------------------------------------

    def drain(self) -> list[Change]:
        """The changelog entries of what changed since the last drain: each changed
        window's latest value, deletions (``None``) for windows closed or merged away,
        the stream time. The deletions come last: written after the closed windows'
        emissions were acknowledged, a crash never forgets a window unemitted."""
        entries: list[Change] = []
        deletions: list[Change] = []
        for key, start in self._dirty:
            slot = self._open.get((key, start))
            if slot is None:
                deletions.append((_entry_key(key, start), None))
            else:
                entries.append((_entry_key(key, start), json.dumps(slot).encode()))
        self._dirty.clear()
        if self._time_dirty:
            entries.append((_TIME, b"%d" % self.stream_time))
            self._time_dirty = False
        return entries + deletions

    def restore(self, entries: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Rebuild from changelog entries, oldest first (the last one of a key wins)."""
        self._open.clear()
        self._deadlines.clear()
        self._dirty.clear()
        self._time_dirty = False
        self.stream_time = -1
        gap = self._gap
        latest: dict[bytes, bytes | None] = {}
        for key, value in entries:
            latest[key] = value
        for key, value in latest.items():
            if key == _TIME:
                self.stream_time = int(value) if value is not None else -1
            elif value is not None:
                record_key, start = _parse_key(key)
                end, acc = json.loads(value)
                self._open[(record_key, start)] = [end, acc]
                heapq.heappush(
                    self._deadlines,
                    (end + gap + self._grace, start, record_key or b"", record_key),
                )


def _merge(reducer: Reducer, a: Any, b: Any) -> Any:
    """Two sessions' aggregates as one: counts and sums add; a user reducer folds the
    second aggregate in as a value."""
    if reducer is _count or reducer is _sum:
        return (a or 0) + (b or 0)
    return reducer(a, b)


def _windows_of(window: TumblingWindow | HoppingWindow, timestamp: int) -> list[tuple[int, int]]:
    size = int(window.size * 1000)
    if isinstance(window, TumblingWindow):
        start = timestamp - timestamp % size
        return [(start, start + size)]
    advance = int(window.advance * 1000)
    last = timestamp - timestamp % advance
    found = []
    start = last
    while start > timestamp - size and start >= 0:
        found.append((start, start + size))
        start -= advance
    return found[::-1]

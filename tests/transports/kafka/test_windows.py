"""Window stores (pure): folding, closing on stream time, late records, sessions, and
rebuilding from the changelog entries they write."""

from __future__ import annotations

from typing import Any

import pytest

from framework.exceptions import ConfigurationError, TransportError
from framework.transports.kafka._windows import (
    Change,
    HoppingWindow,
    SessionWindow,
    TumblingWindow,
    WindowStore,
    reducer_of,
)


def store(window: Any, aggregate: Any = "count", **options: Any) -> WindowStore:
    return WindowStore(window, reducer_of(aggregate, "test"), max_windows=options.get("max", 100))


def feed(s: WindowStore, *records: tuple[bytes | None, int, Any]) -> tuple[list[Any], list[Change]]:
    closed: list[Any] = []
    log: list[Change] = []
    for key, ts, value in records:
        closed += [(c.key, c.start, c.end, c.value) for c in s.add(key, ts, value)]
        log += s.drain()
    return closed, log


def test_tumbling_windows_close_when_stream_time_passes_end_plus_grace() -> None:
    s = store(TumblingWindow(10, grace=2))
    closed, _ = feed(s, (b"a", 1000, 1), (b"a", 9000, 1), (b"b", 9500, 1), (b"a", 11000, 1))
    assert closed == []  # 11 s < 10 s + 2 s grace
    closed, _ = feed(s, (b"a", 5000, 1))  # late but within grace: counts
    assert closed == []
    closed, _ = feed(s, (b"b", 12000, 1))
    assert closed == [(b"a", 0, 10000, 3), (b"b", 0, 10000, 1)]
    closed, _ = feed(s, (b"a", 3000, 1))  # its window has closed: late, dropped
    assert closed == [] and s.late == 1 and s.closed_count == 2
    assert len(s) == 2  # [10 s, 20 s) of a and b


def test_sum_and_a_user_reducer() -> None:
    s = store(TumblingWindow(1), "sum")
    closed, _ = feed(s, (b"k", 0, 2), (b"k", 500, 3), (b"k", 1000, 1))
    assert closed == [(b"k", 0, 1000, 5)]
    s = store(TumblingWindow(1), lambda acc, v: max(acc or 0, v))
    closed, _ = feed(s, (b"k", 0, 2), (b"k", 500, 7), (b"k", 600, 3), (b"k", 1000, 1))
    assert closed == [(b"k", 0, 1000, 7)]


def test_hopping_windows_count_a_record_in_each_window_it_falls_in() -> None:
    s = store(HoppingWindow(10, advance=5))
    closed, _ = feed(s, (None, 7000, 1), (None, 30000, 1))
    assert closed == [(None, 0, 10000, 1), (None, 5000, 15000, 1)]


def test_sessions_merge_records_closer_than_the_gap() -> None:
    s = store(SessionWindow(5))
    closed, _ = feed(s, (b"u", 0, 1), (b"u", 4000, 1), (b"u", 8000, 1), (b"v", 9000, 1))
    assert closed == []
    closed, _ = feed(s, (b"u", 30000, 1))
    assert closed == [(b"u", 0, 8000, 3), (b"v", 9000, 9000, 1)]
    # A record between two open sessions merges them.
    s = store(SessionWindow(5, grace=10))
    feed(s, (b"u", 0, 1), (b"u", 8000, 1))
    assert len(s) == 2
    closed, _ = feed(s, (b"u", 4000, 1), (b"u", 60000, 1))
    assert closed == [(b"u", 0, 8000, 3)]


def test_the_changelog_rebuilds_the_same_state() -> None:
    s = store(TumblingWindow(10, grace=5))
    _, log = feed(s, (b"a", 1000, 1), (b"b", 2000, 1), (b"a", 12000, 1), (b"a", 3000, 1))
    again = store(TumblingWindow(10, grace=5))
    again.restore(log)
    assert again.stream_time == s.stream_time == 12000
    assert len(again) == len(s) == 3
    rest = [(b"a", 15000, 1), (b"b", 40000, 1)]
    assert (
        feed(again, *rest)[0]
        == feed(s, *rest)[0]
        == [
            (b"a", 0, 10000, 2),
            (b"b", 0, 10000, 1),
            (b"a", 10000, 20000, 2),
        ]
    )


def test_limits_and_bad_options() -> None:
    s = store(TumblingWindow(1), max=2)
    feed(s, (b"a", 0, 1), (b"b", 0, 1))
    with pytest.raises(TransportError, match="window state is full"):
        s.add(b"c", 0, 1)
    with pytest.raises(ConfigurationError):
        TumblingWindow(0)
    with pytest.raises(ConfigurationError):
        HoppingWindow(10, advance=11)
    with pytest.raises(ConfigurationError, match="aggregate="):
        reducer_of("avg", "test")

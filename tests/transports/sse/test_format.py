"""The event-stream encoding, the replay buffer and the subscription table: plain code,
no event loop."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from framework import ServerSentEvent
from framework.http._sse import EventStream, encode_event, format_event
from framework.transports.sse import ReplayBuffer, _Subscriptions


class Order(BaseModel):
    id: int
    total: float


def test_model_and_dict_become_json_data() -> None:
    assert format_event(Order(id=1, total=2.5)) == b'data: {"id":1,"total":2.5}\n\n'
    assert format_event({"a": [1, 2]}) == b'data: {"a":[1,2]}\n\n'


def test_string_is_sent_as_text_and_split_on_every_line_break() -> None:
    assert format_event("one\ntwo\r\nthree\rfour") == (
        b"data: one\ndata: two\ndata: three\ndata: four\n\n"
    )
    assert format_event("") == b"data: \n\n"


def test_all_fields_in_order_and_utf8() -> None:
    block = format_event(
        ServerSentEvent(data="caf\u00e9 \u2615", event="greet", id="7", retry=1500, comment="hi")
    )
    assert block == ": hi\nevent: greet\nid: 7\nretry: 1500\ndata: caf\u00e9 \u2615\n\n".encode()


def test_fields_without_data_dispatch_nothing() -> None:
    assert format_event(ServerSentEvent(retry=10)) == b"retry: 10\n\n"
    assert format_event(ServerSentEvent(comment="a\nb")) == b": a\n: b\n\n"


@pytest.mark.parametrize("bad", ["a\nb", "a\rb"])
def test_line_breaks_in_single_line_fields_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        format_event(ServerSentEvent(data=1, event=bad))
    with pytest.raises(ValueError, match="line break"):
        format_event(ServerSentEvent(data=1, id=bad))


def test_nul_in_id_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        format_event(ServerSentEvent(data=1, id="a\0b"))


def test_encode_event_fast_path_matches_format_event() -> None:
    data = b'{"x":"y"}'
    assert encode_event(data, event="orders.created", id="3-41") == format_event(
        ServerSentEvent(data=data, event="orders.created", id="3-41")
    )
    assert encode_event(b"a\nb") == b"data: a\ndata: b\n\n"


def _ids(entries: list | None) -> list[str] | None:  # type: ignore[type-arg]
    return None if entries is None else [e.id for e in entries]


def test_replay_returns_what_came_after_an_id_in_arrival_order() -> None:
    buf = ReplayBuffer(max_events=10, max_age=60)
    # Kafka-style ids from two partitions interleave; only the position matters.
    for i, event_id in enumerate(["0-5", "1-2", "0-6", "1-3"]):
        buf.add(event_id, "p", b"", now=i)
    assert _ids(buf.after("1-2", now=4)) == ["0-6", "1-3"]
    assert _ids(buf.after("1-3", now=4)) == []
    assert buf.after("9-9", now=4) is None
    assert buf.latest_id == "1-3"


def test_replay_forgets_the_oldest_beyond_its_size() -> None:
    buf = ReplayBuffer(max_events=3, max_age=60)
    for i in range(1, 6):
        buf.add(str(i), "p", b"", now=0)
    assert len(buf) == 3
    assert buf.after("2", now=0) is None
    assert _ids(buf.after("3", now=0)) == ["4", "5"]


def test_replay_forgets_events_older_than_its_age() -> None:
    buf = ReplayBuffer(max_events=100, max_age=10)
    buf.add("1", "p", b"", now=0)
    buf.add("2", "p", b"", now=5)
    assert _ids(buf.after("1", now=9)) == ["2"]
    assert buf.after("1", now=10.5) is None
    assert _ids(buf.after("2", now=10.5)) == []
    assert buf.after("2", now=16) is None
    assert buf.latest_id is None


def test_replay_disabled_with_size_zero() -> None:
    buf = ReplayBuffer(max_events=0, max_age=10)
    buf.add("1", "p", b"", now=0)
    assert buf.after("1", now=0) is None


def test_each_stream_is_a_target_once_however_many_patterns_match() -> None:
    subs = _Subscriptions()
    both, wild, exact, other = (EventStream(name=n) for n in ("both", "wild", "exact", "other"))
    subs.add(both, ("orders.*", "orders.created", "orders.#"))
    subs.add(wild, ("orders.*",))
    subs.add(exact, ("orders.created",))
    subs.add(other, ("chat.*",))
    assert sorted(s.name for s in subs.targets("orders.created")) == ["both", "exact", "wild"]
    assert sorted(s.name for s in subs.targets("orders.eu.created")) == ["both"]
    subs.remove(both)
    assert sorted(s.name for s in subs.targets("orders.eu.created")) == []
    assert sorted(s.name for s in subs.targets("orders.created")) == ["exact", "wild"]
    assert list(subs.targets("nothing")) == []


def test_long_published_names_are_matched_but_never_cached() -> None:
    subs = _Subscriptions()
    subs.add(EventStream(name="echo"), ("echo.*",))
    for i in range(300):
        assert [s.name for s in subs.targets(f"echo.{i}{'x' * 4096}")] == ["echo"]
    assert [s.name for s in subs.targets("echo.short")] == ["echo"]
    assert list(subs._cache) == ["echo.short"]  # nothing longer than MAX_CACHED_NAME


def test_a_full_buffer_refuses_and_a_closed_stream_takes_nothing() -> None:
    stream = EventStream(max_buffer=2)
    assert stream.push(b"a") == 1
    assert stream.push(b"b") == 2
    assert stream.push(b"c") == -1
    stream.drop()
    assert stream.push(b"d") == -1
    assert stream.buffered == 0

"""Generated inputs: JSON values, WebSocket frames, names and ids."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

KNOWN_EVENTS = ["echo", "typed", "count", "fail", "reject", "note", "subscribe",
                "unsubscribe", "cancel", "auth", "exception"]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
names = st.one_of(st.sampled_from(KNOWN_EVENTS), st.text(max_size=30))
ids = st.one_of(st.none(), st.integers(), st.text(max_size=10), json_values)


@st.composite
def frame_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped like a frame, with any field wrong or missing."""
    frame: dict[str, Any] = {}
    if draw(st.booleans()) or draw(st.booleans()):
        frame["event"] = draw(st.one_of(names, json_values))
    if draw(st.booleans()):
        frame["data"] = draw(json_values)
    if draw(st.booleans()):
        frame["id"] = draw(ids)
    if draw(st.integers(0, 4)) == 0:
        frame["headers"] = draw(json_values)
    if draw(st.integers(0, 4)) == 0:
        frame[draw(st.text(max_size=8))] = draw(json_values)
    return frame


raw_frames: st.SearchStrategy[str | bytes] = st.one_of(
    frame_objects().map(json.dumps),
    frame_objects().map(lambda f: json.dumps(f).encode()),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
)

"""Generated messages through the ``Dispatcher`` (the one path every transport uses)
and through the in-memory transport's client. Allowed outcomes: a ``Reply`` whose
bytes are JSON, a ``Stream``, ``Handled``, ``NOT_FOUND``, or a ``Failure`` whose payload
is a documented error; the client raises only ``RemoteError`` with such a payload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from framework import Application, RemoteError
from framework.messaging.dispatch import (
    NOT_FOUND,
    Dispatcher,
    Failure,
    Handled,
    Inbound,
    Reply,
    Stream,
)
from framework.messaging.streams import close
from tests.fuzz.app import make_app
from tests.fuzz.strategies import json_values, names

payloads = st.one_of(
    json_values,
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100),
)
headers = st.one_of(st.none(), st.dictionaries(st.text(max_size=8), json_values, max_size=3))


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[asyncio.AbstractEventLoop, Application]]:
    loop = asyncio.new_event_loop()
    app = make_app()
    loop.run_until_complete(app.start())
    try:
        yield loop, app
    finally:
        loop.run_until_complete(app.stop())
        loop.close()


def documented(payload: Any) -> None:
    assert payload["status"] == "error" and isinstance(payload["message"], str), payload
    assert "internal detail" not in json.dumps(payload)


@given(names, payloads, headers)
@example("typed", b'{"n": "\xff"}', None)  # raised ValueError before errors.py omitted input
def test_dispatch_outcomes_are_documented(
    running: tuple[asyncio.AbstractEventLoop, Application],
    pattern: str,
    payload: Any,
    hs: dict[str, Any] | None,
) -> None:
    loop, app = running
    dispatcher = Dispatcher(app.router, "memory")

    async def one() -> None:
        outcome = await dispatcher.dispatch(Inbound(pattern, payload, hs))
        if isinstance(outcome, Reply):
            json.loads(outcome.data)
            if pattern == "echo" and not isinstance(payload, bytes):
                assert json.loads(outcome.data) == payload
        elif isinstance(outcome, Failure):
            documented(outcome.payload)
        elif isinstance(outcome, Stream):
            await close(outcome.source)
        else:
            assert outcome is NOT_FOUND or isinstance(outcome, Handled)
            if isinstance(outcome, Handled) and outcome.error is not None:
                documented(outcome.error)

    loop.run_until_complete(one())


@given(names, json_values)
def test_memory_client_gets_a_result_or_a_documented_error(
    running: tuple[asyncio.AbstractEventLoop, Application], pattern: str, data: Any
) -> None:
    loop, app = running

    async def one() -> None:
        try:
            result = await app.client.send(pattern, data, timeout=5)
        except RemoteError as err:
            documented(err.payload)
        else:
            if pattern == "echo":
                assert result == data
            json.dumps(result)

    loop.run_until_complete(one())

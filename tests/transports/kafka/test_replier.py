"""``Replier`` with a fake producer: the reply records of values, errors and streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from framework.messaging.codecs import encode
from framework.messaging.dispatch import NOT_FOUND, Failure, Reply, Stream
from framework.transports.kafka._replies import MAX_UNACKED, Replier
from framework.transports.kafka.wire import NO_HANDLER, RequestInfo
from tests.timing import TIME_FACTOR
from tests.transports.kafka.fakes import FakeHandler, FakeLane, FakeProducer

INFO = RequestInfo("c-1", "orders.reply", 3)
DISPOSED = "kafka_nest-is-disposed"
NO_VALUE = "framework_no-value"
LIMIT = 10 * TIME_FACTOR


def replier(producer: FakeProducer, **options: Any) -> Replier:
    return Replier(producer, **options)


async def test_a_value_is_one_disposed_record_whose_ack_joins_the_lane() -> None:
    producer, lane = FakeProducer(), FakeLane()
    r = replier(producer)
    await r.answer(lane, INFO, Reply(encode({"id": 1})))  # type: ignore[arg-type]
    [sent] = producer.sent
    assert (sent.topic, sent.partition, sent.value, sent.key) == (
        "orders.reply",
        3,
        b'{"id":1}',
        None,
    )
    assert sent.headers == {"kafka_correlationId": b"c-1", DISPOSED: b"\x00"}
    assert len(lane.acks) == 1
    await r.settle(lane)  # type: ignore[arg-type]
    assert lane.acks == []


async def test_strings_travel_as_text_and_null_as_a_keyed_null_value() -> None:
    producer, lane = FakeProducer(), FakeLane()
    r = replier(producer)
    for value in ("hello", None, float("nan"), 42):
        await r.answer(lane, INFO, Reply(encode(value)))  # type: ignore[arg-type]
    assert [s.value for s in producer.sent] == [b"hello", None, None, b"42"]
    assert producer.sent[1].key == b"c-1"  # aiokafka refuses a record without both


async def test_errors_and_unknown_patterns_are_error_records() -> None:
    producer, lane = FakeProducer(), FakeLane()
    r = replier(producer)
    await r.answer(lane, INFO, Failure({"status": "error", "message": "nope"}))  # type: ignore[arg-type]
    await r.answer(lane, INFO, NOT_FOUND)  # type: ignore[arg-type]
    failed, missing = producer.sent
    assert failed.value is None
    assert failed.headers["kafka_nest-err"] == b'{"status":"error","message":"nope"}'
    assert DISPOSED in failed.headers
    assert missing.headers["kafka_nest-err"] == NO_HANDLER.encode()


async def stream_records(source: AsyncIterator[Any], **options: Any) -> list[Any]:
    producer = FakeProducer()
    r = replier(producer, **options)
    await r.answer(FakeLane(), INFO, Stream(source, FakeHandler()))  # type: ignore[arg-type]
    await r.stop(LIMIT)  # waits for the stream to end
    return producer.sent


async def test_a_quick_stream_marks_its_last_item() -> None:
    async def three() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    sent = await stream_records(three(), stream_end_wait=LIMIT)
    assert [s.value for s in sent] == [b"0", b"1", b"2"]
    assert [DISPOSED in s.headers for s in sent] == [False, False, True]
    assert not any(NO_VALUE in s.headers for s in sent)


async def test_a_live_stream_ends_with_a_record_of_its_own() -> None:
    async def live() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(0.05)
        yield "b"
        await asyncio.sleep(0.05)

    sent = await stream_records(live(), stream_end_wait=0.001)
    assert [s.value for s in sent] == [b"a", b"b", None]
    assert [DISPOSED in s.headers for s in sent] == [False, False, True]
    assert NO_VALUE in sent[-1].headers


async def test_an_empty_stream_is_the_end_record_alone() -> None:
    async def empty() -> AsyncIterator[int]:
        return
        yield

    [end] = await stream_records(empty())
    assert end.value is None and DISPOSED in end.headers and NO_VALUE in end.headers


async def test_a_failure_mid_stream_sends_the_items_then_an_error() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("secret")

    sent = await stream_records(broken(), stream_end_wait=LIMIT)
    assert sent[0].value == b"1" and DISPOSED not in sent[0].headers
    assert (
        sent[1].headers["kafka_nest-err"] == b'{"status":"error","message":"Internal server error"}'
    )


async def test_stop_cuts_a_stream_short_with_an_error_and_closes_it() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                yield 0
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    producer = FakeProducer()
    r = replier(producer, stream_end_wait=0.001)
    await r.answer(FakeLane(), INFO, Stream(endless(), FakeHandler()))  # type: ignore[arg-type]
    async with asyncio.timeout(LIMIT):
        await producer.grew.wait()
    await r.stop(0)
    assert closed.is_set() and r.streams == 0
    assert b"shutting down" in producer.sent[-1].headers["kafka_nest-err"]


async def test_a_stream_waits_when_the_broker_lags_behind() -> None:
    produced = 0

    async def many() -> AsyncIterator[int]:
        nonlocal produced
        for i in range(MAX_UNACKED * 2):
            produced += 1
            yield i

    producer = FakeProducer(hold_acks=True)
    r = replier(producer, stream_end_wait=LIMIT)
    await r.answer(FakeLane(), INFO, Stream(many(), FakeHandler()))  # type: ignore[arg-type]
    async with asyncio.timeout(LIMIT):
        await producer.until(MAX_UNACKED + 1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(producer.sent) == MAX_UNACKED + 1  # the next item waits for an ack
    assert produced <= MAX_UNACKED + 3
    producer.release()
    producer.hold_acks = False
    await r.stop(LIMIT)
    assert len(producer.sent) == MAX_UNACKED * 2
    assert DISPOSED in producer.sent[-1].headers


async def test_streams_beyond_max_streams_wait_for_a_slot() -> None:
    release = asyncio.Event()

    async def held() -> AsyncIterator[int]:
        await release.wait()
        yield 1

    producer = FakeProducer()
    r = replier(producer, max_streams=1)
    await r.answer(FakeLane(), INFO, Stream(held(), FakeHandler()))  # type: ignore[arg-type]
    second = asyncio.create_task(r.answer(FakeLane(), INFO, Stream(held(), FakeHandler())))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert not second.done() and r.streams == 1
    release.set()
    async with asyncio.timeout(LIMIT):
        await second
    await r.stop(LIMIT)
    assert len(producer.sent) == 2

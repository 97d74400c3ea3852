"""Batch handlers (``@event_pattern(batch=True)``): memory and Kafka hand them batches;
every transport delivers each valid event once, in order; a bad event stays out of its
batch (Kafka dead-letters it) without costing the others."""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType

import pytest
from pydantic import BaseModel

from framework import (
    ConfigurationError,
    controller,
    create_app,
    event_pattern,
    injectable,
    module,
)
from tests.timing import TIME_FACTOR
from tests.transports.kafka.test_kafka import name, produce, read, transport
from tests.transports.kafka.test_produce import committed

WAIT = 10 * TIME_FACTOR


class Order(BaseModel):
    id: int


@injectable()
class Batches:
    def __init__(self) -> None:
        self.seen: list[list[int]] = []
        self.count = 0
        self.expected = 0
        self.done = asyncio.Event()

    def add(self, orders: list[Order]) -> None:
        self.seen.append([o.id for o in orders])
        self.count += len(orders)
        if self.count >= self.expected:
            self.done.set()

    async def wait_for(self, count: int) -> None:
        self.expected = count
        if self.count < count:
            self.done.clear()
            await asyncio.wait_for(self.done.wait(), WAIT)


@controller()
class OrdersController:
    def __init__(self, batches: Batches) -> None:
        self.batches = batches

    @event_pattern("batch.orders", batch=True, max_batch=3, max_wait=0.05)
    async def on_orders(self, orders: list[Order]) -> None:
        self.batches.add(orders)


@module(controllers=[OrdersController], providers=[Batches])
class OrdersModule:
    pass


async def test_every_transport_delivers_each_valid_event_once_in_order(
    harness: ModuleType,
) -> None:
    async with harness.serve(OrdersModule) as served:
        batches = served.app.get(Batches)
        for i in range(7):
            payload = {"id": "not a number"} if i == 3 else {"id": i}
            await served.client.emit("batch.orders", payload, key="k")
        await batches.wait_for(6)
        assert [i for batch in batches.seen for i in batch] == [0, 1, 2, 4, 5, 6]
        assert all(1 <= len(batch) <= 3 for batch in batches.seen)


async def test_memory_batches_by_size_then_by_wait(caplog: pytest.LogCaptureFixture) -> None:
    async with create_app(OrdersModule) as app:
        batches = app.get(Batches)
        with caplog.at_level(logging.WARNING, logger="framework.messaging"):
            for i in range(6):  # queued together: the worker drains them in one go
                await app.client.emit("batch.orders", {"id": "bad"} if i == 1 else {"id": i})
            await asyncio.wait_for(app.memory.join(), WAIT)
        # 5 valid: a full batch of 3, then 2 handled once max_wait passed.
        assert batches.seen == [[0, 2, 3], [4, 5]]
        refused = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 1 and "Validation failed" in refused[0].getMessage()


async def test_a_batch_handler_takes_only_a_list() -> None:
    @controller()
    class Wrong:
        @event_pattern("batch.wrong", batch=True)
        async def on_one(self, order: Order) -> None: ...

    @module(controllers=[Wrong])
    class WrongModule:
        pass

    with pytest.raises(ConfigurationError, match=r"typed list\[T\]"):
        async with create_app(WrongModule):
            pass
    with pytest.raises(ConfigurationError, match="max_batch"):
        event_pattern("batch.x", batch=True, max_batch=0)


@pytest.mark.kafka
@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "eos"])
async def test_kafka_batches_a_fetch_and_dead_letters_the_bad_record(
    kafka_bootstrap_servers: str, exactly_once: bool
) -> None:
    bootstrap = kafka_bootstrap_servers
    topic = name("batch")
    seen: list[list[int]] = []
    done = asyncio.Event()

    @controller()
    class Orders:
        @event_pattern(topic, batch=True, max_batch=4)
        async def on_orders(self, orders: list[Order]) -> None:
            seen.append([o.id for o in orders])
            if sum(len(b) for b in seen) >= 9:
                done.set()

    @module(controllers=[Orders])
    class App:
        pass

    # Produced before the consumer starts: its first fetch holds all ten.
    values = [b'{"id": "x"}' if i == 5 else b'{"id": %d}' % i for i in range(10)]
    await produce(bootstrap, topic, *((v, []) for v in values))
    group = name("g")
    app_transport = transport(
        bootstrap, auto_offset_reset="earliest", group_id=group, exactly_once=exactly_once
    )
    async with create_app(App, transports=[app_transport]):
        await asyncio.wait_for(done.wait(), WAIT)
        dead = await read(bootstrap, f"{topic}.dlq", 1)
    assert await committed(bootstrap, group, topic, 10) == 10  # in its transaction, with EOS
    assert [i for batch in seen for i in batch] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert max(len(b) for b in seen) == 4 and all(len(b) <= 4 for b in seen)
    assert [dict(r.headers)["kafka_dlt-original-offset"] for r in dead] == [b"5"]


@pytest.mark.kafka
async def test_kafka_splits_a_failing_batch_and_dead_letters_only_the_culprit(
    kafka_bootstrap_servers: str,
) -> None:
    bootstrap = kafka_bootstrap_servers
    topic = name("batch")
    handled: list[int] = []
    calls: list[list[int]] = []
    done = asyncio.Event()

    @controller()
    class Orders:
        @event_pattern(topic, batch=True, max_batch=10, max_retries=1, retry_backoff=0.01)
        async def on_orders(self, orders: list[Order]) -> None:
            calls.append([o.id for o in orders])
            if any(o.id == 2 for o in orders):
                raise RuntimeError("order 2 breaks the handler")
            handled.extend(o.id for o in orders)
            if len(handled) >= 4:
                done.set()

    @module(controllers=[Orders])
    class App:
        pass

    await produce(bootstrap, topic, *((b'{"id": %d}' % i, []) for i in range(5)))
    async with create_app(App, transports=[transport(bootstrap, auto_offset_reset="earliest")]):
        await asyncio.wait_for(done.wait(), WAIT)
        dead = await read(bootstrap, f"{topic}.dlq", 1)
    assert calls[0] == [0, 1, 2, 3, 4]  # the whole fetch, as one batch: it fails
    assert handled == [0, 1, 3, 4]  # then one by one: only order 2 keeps failing
    assert calls.count([2]) == 2  # alone, then its one retry
    assert [dict(r.headers)["kafka_dlt-original-offset"] for r in dead] == [b"2"]

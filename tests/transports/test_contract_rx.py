"""Observables over every transport: handler results, the bridge's overflow policies,
disposal on cancel, ``client.observe`` and interceptors that map stream items.

Runs over each harness in ``harnesses/`` (a real server and a real client of each
transport), like ``test_contract.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest
import reactivex
from reactivex import operators as ops
from reactivex.abc import ObserverBase, SchedulerBase
from reactivex.disposable import Disposable

from framework import (
    ExecutionContext,
    RemoteError,
    RequestTimeoutError,
    RpcException,
    controller,
    injectable,
    map_items,
    message_pattern,
    module,
    use_interceptors,
)
from framework.rx import from_observable
from tests.timing import TIME_FACTOR

WAIT = 10 * TIME_FACTOR


@injectable()
class Lifecycle:
    """What the Observables' subscribe and dispose functions saw."""

    def __init__(self) -> None:
        self.subscribed = asyncio.Event()
        self.disposed = asyncio.Event()


class Tag:
    """Maps each item of whatever the handler returns (one interceptor for both kinds)."""

    async def intercept(self, ctx: ExecutionContext, call_next: Any) -> Any:
        return map_items(await call_next(), lambda item: {"item": item, "via": ctx.transport})


@controller()
class RxController:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    @message_pattern("rx.count")
    def count(self, n: int) -> reactivex.Observable[dict[str, int]]:
        return reactivex.range(n).pipe(ops.map(lambda i: {"i": i}))

    @message_pattern("rx.timed")
    async def timed(self, n: int) -> reactivex.Observable[int]:
        # interval runs on the loop (the bridge subscribes with an AsyncIOScheduler)
        return reactivex.interval(0.002).pipe(ops.take(n))

    @message_pattern("rx.broken")
    async def broken(self, n: int) -> reactivex.Observable[int]:
        return reactivex.concat(reactivex.of(1, 2), reactivex.throw(RpcException("rx broke")))

    @message_pattern("rx.crash")
    async def crash(self, n: int) -> reactivex.Observable[int]:
        return reactivex.throw(RuntimeError("secret internals"))

    @message_pattern("rx.endless")
    async def endless(self, payload: dict[str, Any]) -> reactivex.Observable[int]:
        lifecycle = self.lifecycle

        def subscribe(observer: ObserverBase[int], scheduler: SchedulerBase | None) -> Any:
            lifecycle.subscribed.set()
            silent = payload.get("silent", False)
            source = reactivex.never() if silent else reactivex.interval(0.01)
            inner = source.subscribe(observer, scheduler=scheduler)

            def dispose() -> None:
                inner.dispose()
                lifecycle.disposed.set()

            return Disposable(dispose)

        return reactivex.create(subscribe)

    @message_pattern("rx.policy")
    async def policy(self, payload: dict[str, Any]) -> Any:
        # from_iterable emits every item in one go: 50 arrive at a buffer of 10.
        burst = reactivex.from_iterable(range(50))
        return from_observable(burst, buffer_size=10, overflow=payload["overflow"])

    @message_pattern("rx.tagged")
    @use_interceptors(Tag())
    async def tagged(self, n: int) -> reactivex.Observable[int]:
        return reactivex.range(n)

    @message_pattern("rx.tagged_gen")
    @use_interceptors(Tag())
    async def tagged_gen(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @message_pattern("rx.tagged_one")
    @use_interceptors(Tag())
    async def tagged_one(self, n: int) -> int:
        return n


@module(controllers=[RxController], providers=[Lifecycle])
class RxModule:
    pass


async def test_an_observable_streams_its_items_then_ends(harness: ModuleType) -> None:
    async with harness.serve(RxModule) as served:
        items = [item async for item in served.client.stream("rx.count", 3)]
        assert items == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert [item async for item in served.client.stream("rx.timed", 4)] == [0, 1, 2, 3]
        assert [item async for item in served.client.stream("rx.count", 0)] == []


async def test_on_error_is_the_transports_error_after_the_items(harness: ModuleType) -> None:
    async with harness.serve(RxModule) as served:
        items: list[int] = []
        with pytest.raises(RemoteError) as info:
            async for item in served.client.stream("rx.broken", 0):
                items.append(item)
        assert items == [1, 2]
        assert info.value.payload == {"status": "error", "message": "rx broke"}
        with pytest.raises(RemoteError) as crashed:
            await served.client.send("rx.crash", 0)
        assert crashed.value.payload == {"status": "error", "message": "Internal server error"}


async def test_overflow_fails_the_stream_by_default(harness: ModuleType) -> None:
    async with harness.serve(RxModule) as served:
        items: list[int] = []
        with pytest.raises(RemoteError) as info:
            async for item in served.client.stream("rx.policy", {"overflow": "fail"}):
                items.append(item)
        assert items == list(range(10))  # what the buffer held goes before the error
        assert info.value.payload["message"] == (
            "Stream overflow: the source got more than 10 items ahead of the receiver"
        )


async def test_overflow_can_drop_the_oldest_or_keep_the_latest(harness: ModuleType) -> None:
    async with harness.serve(RxModule) as served:
        client = served.client
        newest = [i async for i in client.stream("rx.policy", {"overflow": "drop_oldest"})]
        assert newest == list(range(40, 50))
        latest = [i async for i in client.stream("rx.policy", {"overflow": "keep_latest"})]
        assert latest == [*range(9), 49]


async def test_leaving_an_observable_stream_disposes_it(harness: ModuleType) -> None:
    if not getattr(harness, "CANCELS_STREAMS", True):
        pytest.skip(f"{harness.NAME} has no way to cancel a stream (documented)")
    async with harness.serve(RxModule) as served:
        lifecycle = served.app.get(Lifecycle)
        stream = served.client.stream("rx.endless", {})
        async for item in stream:
            if item == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(lifecycle.disposed.wait(), WAIT)


async def test_a_request_timeout_disposes_the_observable(harness: ModuleType) -> None:
    if not getattr(harness, "CANCELS_STREAMS", True):
        pytest.skip(f"{harness.NAME} has no way to cancel a stream (documented)")
    if harness.NAME == "redis-streams":
        pytest.skip("the Redis example learns that a caller left only when it next writes")
    async with harness.serve(RxModule) as served:
        lifecycle = served.app.get(Lifecycle)
        with pytest.raises(RequestTimeoutError):
            async for _ in served.client.stream("rx.endless", {"silent": True}, timeout=0.3):
                pass
        await asyncio.wait_for(lifecycle.disposed.wait(), WAIT)


async def test_client_observe_is_an_observable_of_the_replies(harness: ModuleType) -> None:
    async with harness.serve(RxModule) as served:
        client = served.client
        items = await client.observe("rx.count", 3).pipe(ops.map(lambda x: x["i"]), ops.to_list())
        assert items == [0, 1, 2]
        assert await client.observe("rx.tagged_one", 5) == {"item": 5, "via": served.transport}
        errors: list[Exception] = []
        failed = asyncio.Event()

        def on_error(exc: Exception) -> None:
            errors.append(exc)
            failed.set()

        client.observe("rx.broken", 0).subscribe(on_error=on_error)
        await asyncio.wait_for(failed.wait(), WAIT)
        assert isinstance(errors[0], RemoteError)
        assert errors[0].payload["message"] == "rx broke"


async def test_disposing_an_observe_subscription_cancels_the_stream(harness: ModuleType) -> None:
    if not getattr(harness, "CANCELS_STREAMS", True):
        pytest.skip(f"{harness.NAME} has no way to cancel a stream (documented)")
    async with harness.serve(RxModule) as served:
        lifecycle = served.app.get(Lifecycle)
        # take(3) disposes the upstream after the third item: the request's stream ends,
        # and the handler's Observable is disposed on the server.
        first = served.client.observe("rx.endless", {}).pipe(ops.take(3), ops.to_list())
        assert await first == [0, 1, 2]
        await asyncio.wait_for(lifecycle.disposed.wait(), WAIT)


async def test_an_interceptor_maps_each_item_of_either_kind(harness: ModuleType) -> None:
    async with harness.serve(RxModule) as served:
        client = served.client
        via = served.transport
        expected = [{"item": 0, "via": via}, {"item": 1, "via": via}]
        assert [x async for x in client.stream("rx.tagged", 2)] == expected
        assert [x async for x in client.stream("rx.tagged_gen", 2)] == expected
        assert await client.send("rx.tagged_one", 7) == {"item": 7, "via": via}


@pytest.mark.kafka
async def test_kafka_stops_a_running_observable_at_shutdown(kafka_bootstrap_servers: str) -> None:
    # NestJS's Kafka wire has no cancel message: a stream ends when the server stops.
    from tests.transports.harnesses import kafka

    async with kafka.serve(RxModule, shutdown_timeout=0.2) as served:
        lifecycle = served.app.get(Lifecycle)
        stream = served.client.stream("rx.endless", {})
        assert await anext(stream) == 0
        await served.app.stop()
        await asyncio.wait_for(lifecycle.disposed.wait(), WAIT)
        with pytest.raises(RemoteError):  # the shutting-down error record
            async for _ in stream:
                pass

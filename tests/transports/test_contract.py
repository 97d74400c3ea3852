"""The behaviour every transport must show, run over each harness in ``harnesses/``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from framework import (
    ExecutionContext,
    MessageContext,
    RemoteError,
    RequestTimeoutError,
    RpcException,
    controller,
    event_pattern,
    injectable,
    message_pattern,
    module,
    use_filters,
    use_guards,
    use_interceptors,
)
from tests.timing import TIME_FACTOR


class Order(BaseModel):
    id: int
    total: float


@injectable()
class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.arrived = asyncio.Event()
        self.expected = 1
        self.release = asyncio.Event()
        self.stream_closed = asyncio.Event()

    def add(self, name: str, value: object) -> None:
        self.events.append((name, value))
        if len(self.events) >= self.expected:
            self.arrived.set()


class OwnPattern:
    """Lets through messages sent to the pattern it guards (a guard that reads the
    execution context)."""

    def can_activate(self, ctx: ExecutionContext) -> bool:
        return ctx.pattern == "contract.intercepted" and ctx.kind == "message"


class Wrap:
    async def intercept(self, ctx: ExecutionContext, call_next: Any) -> Any:
        return {"wrapped": await call_next(), "transport": ctx.transport}


class ValueErrors:
    exception_types = (ValueError,)

    def catch(self, exc: Exception, ctx: ExecutionContext) -> dict[str, str]:
        return {"filtered": str(exc)}


class Never:
    def can_activate(self, ctx: ExecutionContext) -> bool:
        return False


@controller()
class ContractController:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    @message_pattern("contract.echo")
    async def echo(self, order: Order) -> Order:
        return Order(id=order.id, total=order.total * 2)

    @message_pattern("contract.sum")
    def add(self, numbers: list[int]) -> int:
        return sum(numbers)

    @message_pattern("contract.count")
    async def count(self, n: int) -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            yield {"i": i}

    @message_pattern("contract.fail")
    async def fail(self, payload: dict[str, object]) -> None:
        raise RuntimeError("secret internals")

    @message_pattern("contract.reject")
    async def reject(self, payload: dict[str, object]) -> None:
        raise RpcException("order 7 is closed")

    @message_pattern("contract.context")
    async def context(self, payload: dict[str, object], ctx: MessageContext) -> dict[str, str]:
        return {"pattern": ctx.pattern, "transport": ctx.transport}

    @event_pattern("contract.created")
    async def created(self, order: Order) -> None:
        self.recorder.add("a", order.id)

    @event_pattern("contract.created")
    async def created_too(self, order: Order) -> None:
        self.recorder.add("b", order.id)

    @event_pattern("contract.boom")
    async def boom(self, payload: dict[str, object]) -> None:
        raise RuntimeError("event handler failure")

    @event_pattern("contract.ordered")
    async def ordered(self, n: int) -> None:
        self.recorder.add("ordered", n)

    @message_pattern("contract.broken")
    async def broken(self, n: int) -> AsyncIterator[int]:
        yield 1
        yield 2
        raise RpcException("stream broke after 2")

    @message_pattern("contract.endless")
    async def endless(self, payload: dict[str, object]) -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.01)
        finally:
            self.recorder.stream_closed.set()

    @message_pattern("contract.headers")
    async def headers(self, payload: dict[str, object], ctx: MessageContext) -> str | None:
        value = ctx.headers.get("x-tenant")
        return value if isinstance(value, str) else None

    @message_pattern("contract.guarded")
    @use_guards(Never())
    async def guarded(self, payload: dict[str, object]) -> str:
        return "never"

    @message_pattern("contract.intercepted")
    @use_guards(OwnPattern())
    @use_interceptors(Wrap())
    async def intercepted(self, n: int) -> int:
        return n + 1

    @message_pattern("contract.filtered")
    @use_filters(ValueErrors())
    async def filtered(self, payload: dict[str, object]) -> None:
        raise ValueError("bad value")

    @message_pattern("contract.slow")
    async def slow(self, payload: dict[str, object]) -> str:
        await self.recorder.release.wait()
        return "late"


@module(controllers=[ContractController], providers=[Recorder])
class ContractModule:
    pass


async def test_request_reply_validates_and_serialises(harness: ModuleType) -> None:
    async with harness.serve(ContractModule) as served:
        client = served.client
        assert await client.send("contract.echo", {"id": 3, "total": 1.5}) == {
            "id": 3,
            "total": 3.0,
        }
        assert await client.send("contract.sum", [1, 2, 3]) == 6


async def test_stream_yields_every_item_in_order(harness: ModuleType) -> None:
    async with harness.serve(ContractModule) as served:
        client = served.client
        items = [item async for item in client.stream("contract.count", 4)]
        assert items == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]


async def test_invalid_payload_gets_validation_error(harness: ModuleType) -> None:
    async with harness.serve(ContractModule) as served:
        client = served.client
        with pytest.raises(RemoteError) as info:
            await client.send("contract.echo", {"id": "not a number"})
        assert info.value.payload["message"] == "Validation failed"
        locs = {tuple(e["loc"]) for e in info.value.payload["errors"]}
        assert locs == {("id",), ("total",)}


async def test_unknown_pattern_gets_nest_error(harness: ModuleType) -> None:
    async with harness.serve(ContractModule) as served:
        client = served.client
        with pytest.raises(RemoteError) as info:
            await client.send("contract.missing", {})
        assert info.value.payload == {
            "status": "error",
            "message": "There is no matching message handler defined in the remote service.",
        }


async def test_handler_errors_hide_internals_and_keep_serving(harness: ModuleType) -> None:
    async with harness.serve(ContractModule) as served:
        client = served.client
        with pytest.raises(RemoteError) as info:
            await client.send("contract.fail", {})
        assert info.value.payload == {"status": "error", "message": "Internal server error"}
        with pytest.raises(RemoteError) as rpc:
            await client.send("contract.reject", {})
        assert rpc.value.payload == {"status": "error", "message": "order 7 is closed"}
        assert await client.send("contract.sum", [2, 2]) == 4


async def test_context_names_pattern_and_transport(harness: ModuleType) -> None:
    async with harness.serve(ContractModule) as served:
        client = served.client
        reply = await client.send("contract.context", {})
        assert reply == {"pattern": "contract.context", "transport": served.transport}


async def test_event_reaches_every_handler_even_after_a_failing_one(harness: ModuleType) -> None:
    async with harness.serve(ContractModule) as served:
        client = served.client
        await client.emit("contract.boom", {})
        await client.emit("contract.created", {"id": 9, "total": 1})
        recorder = served.app.get(Recorder)
        recorder.expected = 2
        await asyncio.wait_for(recorder.arrived.wait(), 10 * TIME_FACTOR)
        assert sorted(recorder.events) == [("a", 9), ("b", 9)]


async def test_events_from_one_sender_are_handled_in_order(harness: ModuleType) -> None:
    async with harness.serve(ContractModule) as served:
        recorder = served.app.get(Recorder)
        recorder.expected = 30
        for i in range(30):
            # One key: one Kafka partition, where order is what Kafka keeps.
            await served.client.emit("contract.ordered", i, key="contract")
        await asyncio.wait_for(recorder.arrived.wait(), 10 * TIME_FACTOR)
        assert [n for _, n in recorder.events] == list(range(30))


async def test_an_error_mid_stream_follows_the_items_already_sent(harness: ModuleType) -> None:
    async with harness.serve(ContractModule) as served:
        items: list[int] = []
        with pytest.raises(RemoteError) as info:
            async for item in served.client.stream("contract.broken", 0):
                items.append(item)
        assert items == [1, 2]
        assert info.value.payload == {"status": "error", "message": "stream broke after 2"}
        assert await served.client.send("contract.sum", [1, 1]) == 2


async def test_leaving_a_stream_closes_the_handler_generator(harness: ModuleType) -> None:
    if not getattr(harness, "CANCELS_STREAMS", True):
        pytest.skip(f"{harness.NAME} has no way to cancel a stream (documented)")
    async with harness.serve(ContractModule) as served:
        stream = served.client.stream("contract.endless", {})
        async for item in stream:
            if item == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        recorder = served.app.get(Recorder)
        await asyncio.wait_for(recorder.stream_closed.wait(), 10 * TIME_FACTOR)


async def test_headers_reach_the_handler(harness: ModuleType) -> None:
    if not getattr(harness, "CARRIES_HEADERS", True):
        pytest.skip(f"{harness.NAME} messages have no headers (documented)")
    async with harness.serve(ContractModule) as served:
        reply = await served.client.send("contract.headers", {}, headers={"x-tenant": "t1"})
        assert reply == "t1"


async def test_guards_interceptors_and_filters_run_on_every_transport(
    harness: ModuleType,
) -> None:
    async with harness.serve(ContractModule) as served:
        client = served.client
        with pytest.raises(RemoteError) as refused:
            await client.send("contract.guarded", {})
        assert refused.value.payload["message"] == "Forbidden resource"
        assert await client.send("contract.intercepted", 1) == {
            "wrapped": 2,
            "transport": served.transport,
        }
        assert await client.send("contract.filtered", {}) == {"filtered": "bad value"}


async def test_a_slow_handler_times_out_the_caller_and_the_service_keeps_serving(
    harness: ModuleType,
) -> None:
    async with harness.serve(ContractModule) as served:
        recorder = served.app.get(Recorder)
        with pytest.raises(RequestTimeoutError):
            await served.client.send("contract.slow", {}, timeout=0.3 * TIME_FACTOR)
        recorder.release.set()
        assert await served.client.send("contract.sum", [3, 4]) == 7

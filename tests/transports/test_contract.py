"""The behaviour every transport must show, run over each harness in ``harnesses/``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType

import pytest
from pydantic import BaseModel

from framework import (
    MessageContext,
    RemoteError,
    RpcException,
    controller,
    event_pattern,
    injectable,
    message_pattern,
    module,
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

    def add(self, name: str, value: object) -> None:
        self.events.append((name, value))
        if len(self.events) >= self.expected:
            self.arrived.set()


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

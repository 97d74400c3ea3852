"""Small in-test stand-ins for the aiokafka methods the Kafka server's objects call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition  # type: ignore[import-untyped]

from framework.messaging.dispatch import Inbound


@dataclass
class Record:
    """What a ``ConsumerRecord`` offers the server."""

    topic: str = "orders"
    partition: int = 0
    offset: int = 0
    value: bytes | None = b'{"id":1}'
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = 1_700_000_000_000


@dataclass
class Sent:
    topic: str
    value: bytes | None
    key: bytes | None
    partition: int | None
    headers: dict[str, bytes]


class FakeProducer:
    """``send`` records what it is given and returns an ack future: resolved at once,
    or left pending (``hold_acks``) until ``release``. ``failures`` are raised by the
    next calls, one each."""

    def __init__(self, *, hold_acks: bool = False) -> None:
        self.sent: list[Sent] = []
        self.failures: list[Exception] = []
        self.hold_acks = hold_acks
        self.acks: list[asyncio.Future[Any]] = []
        self.grew = asyncio.Event()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(Sent(topic, value, key, partition, dict(headers or [])))
        self.grew.set()
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.hold_acks:
            self.acks.append(ack)
        else:
            ack.set_result(None)
        return ack

    async def until(self, count: int) -> None:
        """Wait until ``count`` records were sent."""
        while len(self.sent) < count:
            self.grew.clear()
            await self.grew.wait()

    def release(self) -> None:
        for ack in self.acks:
            if not ack.done():
                ack.set_result(None)


class FakeLane:
    """A lane whose waits are noted instead of slept; ``close_after`` waits it closes."""

    def __init__(self, close_after: int | None = None) -> None:
        self.open = True
        self.waits: list[float] = []
        self.acks: list[asyncio.Future[Any]] = []
        self.close_after = close_after

    async def sleep(self, seconds: float) -> bool:
        self.waits.append(seconds)
        if self.close_after is not None and len(self.waits) > self.close_after:
            self.open = False
        return self.open


@dataclass(eq=False)
class FakeHandler:
    name: str = "Orders.on_order"


class FakeDispatcher:
    """``call`` runs ``behaviour(attempt, inbound)``, counting the calls."""

    def __init__(self, behaviour: Callable[[int, Inbound], Awaitable[Any]]) -> None:
        self.behaviour = behaviour
        self.calls = 0

    async def call(self, handler: Any, inbound: Inbound) -> Any:
        self.calls += 1
        return await self.behaviour(self.calls, inbound)


class FakeConsumer:
    """The group consumer as ``Lanes`` uses it."""

    def __init__(self, *partitions: TopicPartition) -> None:
        self.assigned = set(partitions)
        self.positions: dict[Any, int] = {tp: 0 for tp in partitions}
        self.commits: list[dict[Any, int]] = []
        self.seeks: list[tuple[Any, int]] = []
        self.commit_failures: list[Exception] = []
        self.highwaters: dict[Any, int] = {}
        self.committed = asyncio.Event()

    def assignment(self) -> set[Any]:
        return set(self.assigned)

    async def position(self, tp: Any) -> int:
        return self.positions[tp]

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def commit(self, offsets: dict[Any, int]) -> None:
        if self.commit_failures:
            raise self.commit_failures.pop(0)
        self.commits.append(dict(offsets))
        self.committed.set()

    def highwater(self, tp: Any) -> int | None:
        return self.highwaters.get(tp)

"""At least once, for real: crashes, rebalances and a broker restart lose no record.

Consumer apps run in separate processes (``consumer_app.py``) that append every handled
record id to a file, flushed before the handler returns; the file is the evidence.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)

from framework import (
    Application,
    RequestTimeoutError,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
)
from framework.observability import Observability
from framework.testing.kafka import LocalKafkaBroker
from framework.transports.kafka import KafkaClient, KafkaTransport
from framework.transports.kafka._admin import TopicCreator
from tests.timing import TIME_FACTOR
from tests.transports.kafka import consumer_app

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[3]
LIMIT = 60 * TIME_FACTOR  # seconds any one wait may take
# Records a crash may replay: the uncommitted window plus what is in flight.
IN_FLIGHT = consumer_app.MAX_BATCH * (1 + consumer_app.MAX_PENDING)


def name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def handled(out: Path) -> list[int]:
    if not out.exists():
        return []
    return [int(line) for line in out.read_text().split()]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (file contents written by another process) up to ``LIMIT``."""
    deadline = time.monotonic() + LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class ConsumerProcess:
    """``consumer_app`` (or another app module taking the same arguments) in a child
    process; ``ready`` is set when it serves."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        out: Path,
        delay: float,
        engine: str = "aiokafka",
        app: str = "tests.transports.kafka.consumer_app",
    ) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", app, bootstrap, topic, group, str(out), str(delay), engine],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.ready = threading.Event()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self.ready.wait(LIMIT):
            self.stop(signal.SIGKILL)
            raise AssertionError("consumer app did not start:\n" + "".join(self.output[-40:]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if line.strip() == "ready":
                self.ready.set()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=LIMIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        return code


@pytest.fixture
def processes() -> Iterator[list[ConsumerProcess]]:
    started: list[ConsumerProcess] = []
    yield started
    for proc in started:
        proc.stop(signal.SIGKILL)


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    creator = TopicCreator(
        bootstrap, partitions=partitions, replication_factor=None, timeout=LIMIT, options={}
    )
    try:
        await creator.ensure([topic])
    finally:
        await creator.close()


async def produce_ids(
    bootstrap: str, topic: str, ids: range, partitions: int | None = None
) -> None:
    """``{"id": i}`` for each id, keyed by the id; with ``partitions``, id ``i`` goes to
    partition ``i % partitions``, in order (on a new topic its offset is then
    ``i // partitions``)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        acks = [
            await producer.send(
                topic,
                f'{{"id": {i}}}'.encode(),
                key=str(i).encode(),
                partition=None if partitions is None else i % partitions,
            )
            for i in ids
        ]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def test_a_killed_consumer_loses_nothing_and_replays_little(
    engine: str, kafka_bootstrap_servers: str, tmp_path: Path, processes: list[ConsumerProcess]
) -> None:
    bootstrap, topic, group = kafka_bootstrap_servers, name("crash"), name("g")
    out, n, partitions = tmp_path / "handled.txt", 1500, 2
    asyncio.run(create_topic(bootstrap, topic, partitions))
    asyncio.run(produce_ids(bootstrap, topic, range(n)))

    first = ConsumerProcess(bootstrap, topic, group, out, delay=0.002, engine=engine)
    processes.append(first)
    wait_until(lambda: len(handled(out)) >= n // 3, "a third of the records")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    before_restart = len(handled(out))
    assert before_restart < n, "the crash came too late to be mid-stream"

    second = ConsumerProcess(bootstrap, topic, group, out, delay=0.0, engine=engine)
    processes.append(second)
    wait_until(lambda: set(handled(out)) >= set(range(n)), "every record")
    assert second.stop() == 0

    seen = handled(out)
    assert set(seen) == set(range(n))
    duplicates = len(seen) - n
    assert duplicates <= consumer_app.COMMIT_EVERY + partitions * IN_FLIGHT, duplicates


def windows(out: Path) -> list[list[int]]:
    """The windows a ``stream_app`` finished, each a list of record ids."""
    if not out.exists():
        return []
    return [[int(i) for i in line.split()] for line in out.read_text().splitlines()]


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    async def read() -> list[int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
        await consumer.start()
        try:
            found = [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
            return [0 if offset is None else offset for offset in found]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def check_commits_follow_windows(
    bootstrap: str, group: str, topic: str, partitions: int, out: Path
) -> list[int]:
    """The committed offsets, after asserting that every record before them is in a
    finished window (read after the offsets: a window is written before its records
    can be committed)."""
    offsets = committed_offsets(bootstrap, group, topic, partitions)
    finished = {i for w in windows(out) for i in w}
    for p, offset in enumerate(offsets):
        # ids were produced so that record o of partition p has id p + o * partitions.
        unfinished = [p + o * partitions for o in range(offset)]
        missing = [i for i in unfinished if i not in finished]
        assert not missing, f"partition {p} committed {offset} past unfinished ids {missing[:5]}"
    return offsets


def test_a_killed_stream_app_loses_no_record_of_its_open_windows(
    kafka_bootstrap_servers: str, tmp_path: Path, processes: list[ConsumerProcess]
) -> None:
    """An inbound-stream handler with a time window (``stream_app``), SIGKILLed with a
    window open and restarted: every record ends up in some finished window (replays
    allowed, counted), and no commit ever passed a record whose window was unfinished."""
    bootstrap, topic, group = kafka_bootstrap_servers, name("stream-crash"), name("g")
    out, n, partitions = tmp_path / "windows.txt", 1200, 2
    app = "tests.transports.kafka.stream_app"
    asyncio.run(create_topic(bootstrap, topic, partitions))
    asyncio.run(produce_ids(bootstrap, topic, range(n), partitions))

    def finished() -> int:
        return len({i for w in windows(out) for i in w})

    first = ConsumerProcess(bootstrap, topic, group, out, delay=0.03, app=app)
    processes.append(first)
    # Commits are checked again and again while it runs (in a thread: a check takes a
    # while, and the kill must not wait for one).
    checks: list[list[int] | BaseException] = []
    killed = threading.Event()

    def check_while_running() -> None:
        while not killed.is_set():
            try:
                checks.append(
                    check_commits_follow_windows(bootstrap, group, topic, partitions, out)
                )
            except BaseException as exc:  # re-raised by the test
                checks.append(exc)
                return

    checker = threading.Thread(target=check_while_running, daemon=True)
    checker.start()
    wait_until(lambda: finished() >= n // 3, "a third of the records")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    killed.set()
    checker.join(LIMIT)
    for check in checks:
        if isinstance(check, BaseException):
            raise check
    at_kill = check_commits_follow_windows(bootstrap, group, topic, partitions, out)
    assert sum(at_kill) < n, "the crash came too late to be mid-stream"
    assert sum(at_kill) > 0, "nothing was committed before the crash"

    second = ConsumerProcess(bootstrap, topic, group, out, delay=0.0, app=app)
    processes.append(second)
    wait_until(lambda: {i for w in windows(out) for i in w} >= set(range(n)), "every record")
    assert second.stop() == 0
    # A graceful stop hands out the open windows and commits them: everything is done.
    assert (
        check_commits_follow_windows(bootstrap, group, topic, partitions, out)
        == [n // partitions] * partitions
    )

    seen = [i for w in windows(out) for i in w]
    assert set(seen) == set(range(n))
    replayed = len(seen) - n
    # Replays: at most what was fetched and not committed when the process died.
    assert 0 <= replayed <= n - sum(at_kill), replayed
    print(f"stream crash: {len(checks)} checks, {at_kill} committed at kill, {replayed} replayed")


def test_a_member_leaving_mid_stream_hands_its_partitions_over(
    engine: str, kafka_bootstrap_servers: str, tmp_path: Path, processes: list[ConsumerProcess]
) -> None:
    bootstrap, topic, group = kafka_bootstrap_servers, name("rebalance"), name("g")
    out_a, out_b, n = tmp_path / "a.txt", tmp_path / "b.txt", 2000
    asyncio.run(create_topic(bootstrap, topic, 4))
    a = ConsumerProcess(bootstrap, topic, group, out_a, delay=0.004, engine=engine)
    processes.append(a)
    b = ConsumerProcess(bootstrap, topic, group, out_b, delay=0.004, engine=engine)
    processes.append(b)
    asyncio.run(produce_ids(bootstrap, topic, range(n)))

    def total() -> list[int]:
        return handled(out_a) + handled(out_b)

    wait_until(lambda: len(handled(out_b)) >= 100 and len(handled(out_a)) >= 100, "both working")
    assert b.stop() == 0  # graceful: finishes in-flight records, commits, leaves the group
    from_b = handled(out_b)
    assert len(set(total())) < n, "B left too late to be mid-stream"
    wait_until(lambda: set(total()) >= set(range(n)), "every record")
    assert a.stop() == 0

    seen = total()
    assert set(seen) == set(range(n))
    assert handled(out_b) == from_b  # B did nothing after it left
    # A graceful hand-over commits before the partitions move: nothing is replayed.
    assert len(seen) - n == 0, len(seen) - n


class Seen:
    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.calls = 0
        self.changed = asyncio.Event()

    def add(self, record_id: int) -> None:
        self.ids.add(record_id)
        self.calls += 1
        self.changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(LIMIT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def recording_app(
    bootstrap: str,
    topic: str,
    seen: Seen,
    engine: str,
    delay: Callable[[int], float] = lambda record_id: 0.0,
    observability: Observability | None = None,
    **options: Any,
) -> tuple[Application, KafkaTransport]:
    """An app whose one handler records each record's ``id`` in ``seen`` (after
    sleeping ``delay(id)`` seconds), on a transport with the fault tests' group settings
    (earliest offsets, a 6 s session) plus ``options``."""

    @controller()
    class Records:
        @event_pattern(topic)
        async def on_record(self, record: dict[str, Any]) -> None:
            wait = delay(record["id"])
            if wait:
                await asyncio.sleep(wait)
            seen.add(record["id"])

    @module(controllers=[Records])
    class App:
        pass

    settings: dict[str, Any] = {
        "group_id": name("g"),
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 500,
        "start_timeout": LIMIT,
        **options,
    }
    transport = KafkaTransport(bootstrap_servers=bootstrap, engine=engine, **settings)
    return create_app(App, transports=[transport], observability=observability), transport


@pytest.mark.parametrize("down_for", [0.0, 8.0], ids=["restart", "down-past-session-timeout"])
async def test_the_app_rides_out_a_broker_restart(
    engine: str, local_kafka_broker: LocalKafkaBroker, down_for: float
) -> None:
    """The broker killed and restarted at once, or kept down longer than the 6 s
    session timeout (the group's session expires): consumption resumes by itself and
    every record is handled."""
    broker = local_kafka_broker
    bootstrap, topic = broker.bootstrap_servers, name("restart")
    seen = Seen()
    app, _ = recording_app(
        bootstrap,
        topic,
        seen,
        engine,
        delay=lambda record_id: 0.003,
        commit_every=50,
        commit_interval=0.2,
        commit_timeout=2.0,
    )
    async with app:
        await produce_ids(bootstrap, topic, range(600))
        await seen.until(lambda: len(seen.ids) >= 150)
        broker.kill()
        await asyncio.sleep(down_for)  # the outage itself: nothing to wait for
        await asyncio.to_thread(broker.restart)
        await produce_ids(bootstrap, topic, range(600, 1000))
        await seen.until(lambda: seen.ids >= set(range(1000)))
        assert app.transports[-1].ready
    assert seen.ids == set(range(1000))


async def test_request_reply_while_a_second_instance_comes_and_goes(
    engine: str,
    kafka_bootstrap_servers: str,
) -> None:
    """Chaos: two server instances in one group on a two-partition topic; one is stopped
    and started again three times while a client keeps sending requests. Every request
    gets exactly one reply (from the instance that handled it) or a timeout error, and a
    request handled twice (a replay after a hand-over) still reaches its caller once."""
    bootstrap, topic, group = kafka_bootstrap_servers, name("rr"), name("g")
    handled: dict[int, list[str]] = {}

    def instance(label: str) -> Any:
        @controller()
        class Answers:
            @message_pattern(topic)
            async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
                handled.setdefault(request["n"], []).append(label)
                return {"n": request["n"], "by": label}

        @module(controllers=[Answers])
        class App:
            pass

        transport = KafkaTransport(
            bootstrap_servers=bootstrap,
            engine=engine,
            group_id=group,
            topic_partitions=2,
            commit_interval=0.1,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
            shutdown_timeout=5.0,
            start_timeout=LIMIT,
        )
        return create_app(App, transports=[transport])

    results: dict[int, Any] = {}
    async with (
        instance("a"),
        KafkaClient(bootstrap_servers=bootstrap, default_timeout=15, engine=engine) as client,
    ):

        async def call(n: int) -> None:
            try:
                results[n] = await client.send(topic, {"n": n})
            except RequestTimeoutError as exc:
                results[n] = exc

        calls: list[asyncio.Task[None]] = []
        for cycle in range(3):
            async with instance(f"b{cycle}"):
                for n in range(cycle * 40, cycle * 40 + 20):
                    calls.append(asyncio.create_task(call(n)))
                    await asyncio.sleep(0.02)
            for n in range(cycle * 40 + 20, cycle * 40 + 40):  # b just left
                calls.append(asyncio.create_task(call(n)))
                await asyncio.sleep(0.02)
        await asyncio.gather(*calls)
    replies = {n: r for n, r in results.items() if not isinstance(r, Exception)}
    assert set(results) == set(range(120))  # one outcome for every request
    for n, reply in replies.items():
        assert reply["n"] == n and reply["by"] in handled[n]  # its own reply, from its handler
    twice = sum(1 for labels in handled.values() if len(labels) > 1)
    timeouts = len(results) - len(replies)
    print(
        f"chaos: 120 requests, {len(replies)} replies, {timeouts} timeouts, {twice} handled twice"
    )
    assert timeouts <= 12, f"{timeouts} of 120 requests timed out"


async def test_a_handler_slower_than_max_poll_interval_causes_no_rebalance_loop(
    engine: str,
    kafka_bootstrap_servers: str,
) -> None:
    """Handlers taking 0.5 s longer than ``max_poll_interval_ms`` on a one-partition
    topic, the lane full behind them: every record is handled exactly once. (librdkafka
    wants the poll interval at least the 6 s session timeout, so that engine's run
    takes longer.)"""
    bootstrap, topic = kafka_bootstrap_servers, name("slow")
    seen = Seen()
    max_poll_ms = 2000 if engine == "aiokafka" else 6000
    app, _ = recording_app(
        bootstrap,
        topic,
        seen,
        engine,
        # The first records outlast the poll interval.
        delay=lambda record_id: max_poll_ms / 1000 + 0.5 if record_id < 3 else 0.0,
        topic_partitions=1,
        max_batch_size=1,
        max_pending_batches=1,
        commit_interval=0.1,
        max_poll_interval_ms=max_poll_ms,
    )
    async with app:
        await produce_ids(bootstrap, topic, range(20))
        await seen.until(lambda: seen.ids >= set(range(20)))
    assert seen.calls == 20, f"{seen.calls - 20} records handled again after a rebalance"

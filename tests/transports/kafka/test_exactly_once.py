"""Exactly once for real: an app killed with SIGKILL at random points, and restarted,
still produces every input's output exactly once for a ``read_committed`` reader; the
same app at least once loses nothing but repeats outputs.

The app (``eos_app.py``) runs in a separate process and doubles every input id into an
output topic; the output topic is the evidence.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]

from framework.transports.kafka._admin import TopicCreator
from tests.timing import TIME_FACTOR

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[3]
LIMIT = 60 * TIME_FACTOR  # seconds any one wait may take
RECORDS, PARTITIONS, KILLS = 2000, 2, 3


def name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


class AppProcess:
    """``eos_app`` in a child process; returns once it serves."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.transports.kafka.eos_app", *args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.ready = threading.Event()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self.ready.wait(LIMIT):
            self.stop(signal.SIGKILL)
            raise AssertionError("the app did not start:\n" + "".join(self.output[-40:]))

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
def apps() -> Iterator[list[AppProcess]]:
    started: list[AppProcess] = []
    yield started
    for app in started:
        app.stop(signal.SIGKILL)


async def create_topics(bootstrap: str, *topics: str) -> None:
    creator = TopicCreator(
        bootstrap, partitions=PARTITIONS, replication_factor=None, timeout=LIMIT, options={}
    )
    try:
        await creator.ensure(list(topics))
    finally:
        await creator.close()


async def produce_ids(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        acks = [
            await producer.send(topic, f'{{"id": {i}}}'.encode(), key=str(i).encode())
            for i in range(count)
        ]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def written(bootstrap: str, topic: str) -> int:
    """Records written to ``topic`` so far, committed or not (its high watermarks)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions(topic))
        return sum(ends.values())
    finally:
        await consumer.stop()


def partitions(topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(PARTITIONS)]


async def committed_ids(bootstrap: str, topic: str) -> list[int]:
    """The ids of every committed record of ``topic``, up to its last stable offset."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    ids: list[int] = []
    try:
        consumer.assign(partitions(topic))
        ends = await consumer.end_offsets(partitions(topic))  # read_committed: the LSO
        async with asyncio.timeout(LIMIT):
            for tp, end in ends.items():
                while await consumer.position(tp) < end:
                    for records in (await consumer.getmany(tp, timeout_ms=200)).values():
                        ids.extend(json.loads(r.value)["id"] for r in records)
    finally:
        await consumer.stop()
    return ids


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["eos", "alo"])
def test_sigkill_mid_stream_neither_loses_nor_with_exactly_once_repeats_an_output(
    kafka_bootstrap_servers: str, apps: list[AppProcess], mode: str
) -> None:
    bootstrap = kafka_bootstrap_servers
    source, out, group = name("eos.in"), name("eos.out"), name("g")
    asyncio.run(create_topics(bootstrap, source, out))
    asyncio.run(produce_ids(bootstrap, source, RECORDS))
    rng = random.Random(f"{mode}-{os.getpid()}")  # random kill points; the seed in a failure
    print(f"kill points seeded with {mode}-{os.getpid()}")

    def progress() -> int:
        return asyncio.run(written(bootstrap, out))

    for _ in range(KILLS):
        app = AppProcess(bootstrap, source, out, group, mode)
        apps.append(app)
        target = progress() + rng.randint(50, 300)
        wait_until(lambda t=target: progress() >= t, f"{target} records written")
        assert app.stop(signal.SIGKILL) == -signal.SIGKILL
    assert len(set(asyncio.run(committed_ids(bootstrap, out)))) < RECORDS, "killed too late"

    last = AppProcess(bootstrap, source, out, group, mode)
    apps.append(last)
    wait_until(
        lambda: len(set(asyncio.run(committed_ids(bootstrap, out)))) == RECORDS, "every output"
    )
    assert last.stop() == 0

    counts = Counter(asyncio.run(committed_ids(bootstrap, out)))
    assert set(counts) == set(range(RECORDS))  # nothing lost
    repeated = sum(n - 1 for n in counts.values())
    if mode == "eos":
        assert repeated == 0, f"{repeated} outputs repeated"
    else:
        assert repeated > 0, "at least once without commits should have repeated outputs"


def test_a_member_killed_mid_stream_hands_over_without_repeating_an_output(
    kafka_bootstrap_servers: str, apps: list[AppProcess]
) -> None:
    """Two instances share the partitions; one is killed mid-stream; the other takes its
    partitions over, fencing its transactions (the dead one's open transaction is
    aborted, its committed ones are not handled again)."""
    bootstrap = kafka_bootstrap_servers
    source, out, group = name("eos.in"), name("eos.out"), name("g")
    asyncio.run(create_topics(bootstrap, source, out))
    a = AppProcess(bootstrap, source, out, group, "eos")
    apps.append(a)
    b = AppProcess(bootstrap, source, out, group, "eos")
    apps.append(b)
    asyncio.run(produce_ids(bootstrap, source, RECORDS))

    def progress() -> int:
        return asyncio.run(written(bootstrap, out))

    wait_until(lambda: progress() >= RECORDS // 4, "a quarter written")
    assert b.stop(signal.SIGKILL) == -signal.SIGKILL
    assert len(set(asyncio.run(committed_ids(bootstrap, out)))) < RECORDS, "killed too late"
    wait_until(
        lambda: len(set(asyncio.run(committed_ids(bootstrap, out)))) == RECORDS, "every output"
    )
    assert a.stop() == 0
    counts = Counter(asyncio.run(committed_ids(bootstrap, out)))
    assert set(counts) == set(range(RECORDS))
    assert sum(n - 1 for n in counts.values()) == 0


async def produce_timed(bootstrap: str, topic: str, count: int, base: int) -> None:
    """``count`` records keyed ``k0``..``k4``, 5 ms apart from ``base`` (ms), then one per
    partition far in the future, so that every window of the others closes."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        acks = [
            await producer.send(
                topic,
                f'{{"id": {i}}}'.encode(),
                key=f"k{i % 5}".encode(),
                timestamp_ms=base + 5 * i,
            )
            for i in range(count)
        ]
        for p in range(PARTITIONS):
            acks.append(
                await producer.send(
                    topic, b'{"id": -1}', key=b"end", partition=p, timestamp_ms=base + 10**6
                )
            )
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def committed_windows(bootstrap: str, topic: str) -> list[tuple[str, int, int]]:
    """(key, window start, count) of every committed window record of ``topic``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    found: list[tuple[str, int, int]] = []
    try:
        consumer.assign(partitions(topic))
        ends = await consumer.end_offsets(partitions(topic))
        async with asyncio.timeout(LIMIT):
            for tp, end in ends.items():
                while await consumer.position(tp) < end:
                    for records in (await consumer.getmany(tp, timeout_ms=200)).values():
                        for r in records:
                            window = json.loads(r.value)
                            found.append((window["key"], window["start"], window["value"]))
    finally:
        await consumer.stop()
    return found


@pytest.mark.parametrize("mode", ["eos", "alo"])
def test_a_windowed_count_survives_sigkills(
    kafka_bootstrap_servers: str, apps: list[AppProcess], mode: str
) -> None:
    """Counts per key per 1 s window after SIGKILLs and restarts: exactly the true
    counts, once each, with exactly once; never lower (some windows repeated) at least
    once."""
    bootstrap = kafka_bootstrap_servers
    source, out, group = name("win.in"), name("win.out"), name("g")
    base = 1_700_000_000_000
    asyncio.run(create_topics(bootstrap, source, out))
    asyncio.run(produce_timed(bootstrap, source, RECORDS, base))
    truth = Counter((f"k{i % 5}", (base + 5 * i) // 1000 * 1000) for i in range(RECORDS))
    rng = random.Random(f"window-{mode}-{os.getpid()}")

    for _ in range(KILLS - 1):  # each restart waits out the killed member's session
        app = AppProcess(bootstrap, source, out, group, mode, "window")
        apps.append(app)
        # Killed at a random moment of its work (a replay after an at-least-once
        # restart writes nothing new, so there is no output count to wait for).
        time.sleep(rng.uniform(0.2, 1.5))
        assert app.stop(signal.SIGKILL) == -signal.SIGKILL

    last = AppProcess(bootstrap, source, out, group, mode, "window")
    apps.append(last)

    def windows() -> set[tuple[str, int]]:
        return {(k, s) for k, s, _ in asyncio.run(committed_windows(bootstrap, out))}

    wait_until(lambda: windows() >= set(truth), "every window")
    assert last.stop() == 0
    found = asyncio.run(committed_windows(bootstrap, out))
    best: dict[tuple[str, int], int] = {}
    for key, start, value in found:
        best[(key, start)] = max(best.get((key, start), 0), value)
    assert set(best) == set(truth)
    if mode == "eos":
        assert sorted(found) == sorted((k, s, n) for (k, s), n in truth.items())
    else:
        assert all(best[w] >= n for w, n in truth.items())

"""Keyed tumbling-window count over Kafka: the framework vs Faust vs Quix Streams.

The same pre-produced records (``{"id": n}`` JSON, 100 keys, one record per ms of event
time, one partition) are counted per key in 10 s tumbling windows by:

- framework: ``@event_pattern(topic, emits=out, window=TumblingWindow(10))`` on
  ``KafkaTransport`` (at least once; also ``exactly_once=True``), state in memory with
  a compacted changelog topic;
- Faust (faust-streaming): an agent updating ``app.Table(...).tumbling(10)`` with the
  in-memory store (its changelog topic too);
- Quix Streams: ``sdf.tumbling_window(10_000).count().final()`` (RocksDB state with a
  changelog topic).

Each counts the records it has aggregated; the rate is records / (last - first record
handled). Faust and Quix Streams run in child processes of their own Python (they need
packages the framework does not): ``--peers-python`` (default ``/tmp/eos-peers/bin/python``,
a venv with ``pip install faust-streaming==0.15.3 quixstreams==3.28.1``); a missing one
is skipped.

Run: ``python benchmarks/kafka_windows.py [--records 200000]`` (starts a broker unless
``KAFKA_BOOTSTRAP_SERVERS`` is set). Target: ahead of both.
"""

import argparse
import asyncio
import logging
import os
import subprocess
import time
import uuid
from typing import Any

from benchmarks._kafka import create_topic, kafka_cluster, unique
from framework import controller, create_app, event_pattern, module
from framework.transports.kafka import KafkaTransport, TumblingWindow

KEYS = 100
BASE = 1_700_000_000_000

FAUST = """
import asyncio, os, sys, time, faust
bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = faust.App("bench-faust-" + os.urandom(4).hex(), broker="kafka://" + bootstrap,
                store="memory://", topic_partitions=1, web_enabled=False,
                consumer_auto_offset_reset="earliest")
source = app.topic(topic, key_type=bytes, value_type=bytes)
counts = app.Table("counts", default=int, partitions=1).tumbling(10.0, expires=3600.0)
seen = {"n": 0, "first": 0.0}
@app.agent(source)
async def count(stream):
    async for event in stream.events():
        if not seen["n"]:
            seen["first"] = time.perf_counter()
        counts[event.key] += 1
        seen["n"] += 1
        if seen["n"] == n:
            rate = (n - 1) / (time.perf_counter() - seen["first"])
            os.write(1, b"RESULT %f" % rate + bytes([10]))  # Faust logs what is printed
            os._exit(0)
sys.argv = [sys.argv[0], "worker", "-l", "warn"]
app.main()
"""

QUIX = """
import os, sys, time
from quixstreams import Application
bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = Application(broker_address=bootstrap, consumer_group="bench-quix-" + os.urandom(4).hex(),
                  auto_offset_reset="earliest", loglevel="WARNING",
                  state_dir="/tmp/bench-quix-state-" + os.urandom(4).hex())
seen = {"n": 0, "first": 0.0}
def tick(value):
    if not seen["n"]:
        seen["first"] = time.perf_counter()
    seen["n"] += 1
    if seen["n"] == n:
        print("RESULT", (n - 1) / (time.perf_counter() - seen["first"]), flush=True)
        os._exit(0)
sdf = app.dataframe(app.topic(topic, value_deserializer="json"))
sdf = sdf.update(tick)
sdf = sdf.tumbling_window(duration_ms=10_000).count().final()
app.run()
"""


async def produce_keyed(bootstrap: str, topic: str, n: int) -> None:
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        window = []
        for i in range(n):
            key = f"k{i % KEYS}".encode()
            value = b'{"id": %d}' % i
            window.append(await producer.send(topic, value, key=key, timestamp_ms=BASE + i))
            if len(window) >= 20_000:
                await asyncio.gather(*window)
                window = []
        await asyncio.gather(*window)
    finally:
        await producer.stop()


async def run_framework(bootstrap: str, topic: str, n: int, *, exactly_once: bool) -> float:
    seen = {"n": 0, "first": 0.0, "last": 0.0}
    done = asyncio.Event()

    @controller()
    class Counts:
        @event_pattern(topic, emits=unique("bench.win.out"), window=TumblingWindow(10))
        async def count(self, record: dict[str, Any]) -> int:
            if not seen["n"]:
                seen["first"] = time.perf_counter()
            seen["n"] += 1
            if seen["n"] == n:
                seen["last"] = time.perf_counter()
                done.set()
            return 1

    @module(controllers=[Counts])
    class BenchModule:
        pass

    transport = KafkaTransport(
        bootstrap_servers=bootstrap,
        group_id=f"bench-win-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        exactly_once=exactly_once,
    )
    async with create_app(BenchModule, transports=[transport]):
        await asyncio.wait_for(done.wait(), 600)
    return (n - 1) / (seen["last"] - seen["first"])


def run_peer(python: str, script: str, bootstrap: str, topic: str, n: int) -> float | None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        proc = subprocess.run(
            [python, "-c", script, bootstrap, topic, str(n)],
            capture_output=True, text=True, timeout=900, env=env, cwd="/tmp",
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"  (failed: {exc!r})")
        return None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return float(line.split()[1])
    print("  (no result)\n" + (proc.stdout + proc.stderr)[-2000:])
    return None


async def main(records: int, peers_python: str) -> None:
    with kafka_cluster() as bootstrap:
        topic = unique("bench.win.in")
        await create_topic(bootstrap, topic, 1)
        await produce_keyed(bootstrap, topic, records)
        print(f"{records:,} records, {KEYS} keys, 10 s tumbling count, 1 partition")
        ours = await run_framework(bootstrap, topic, records, exactly_once=False)
        print(f"  framework (at least once): {ours:,.0f} records/s")
        eos = await run_framework(bootstrap, topic, records, exactly_once=True)
        print(f"  framework (exactly once): {eos:,.0f} records/s")
        if not os.path.exists(peers_python):  # noqa: ASYNC240 (once, before the peers)
            print(f"  Faust, Quix Streams: {peers_python} not found; skipped")
            return
        for label, script in (("Faust", FAUST), ("Quix Streams", QUIX)):
            rate = run_peer(peers_python, script, bootstrap, topic, records)
            if rate is None:
                print(f"  {label}: no result")
                continue
            print(f"  {label}: {rate:,.0f} records/s")
            print(
                f"windows: framework / {label} = {ours / rate:.2f} at least once, "
                f"{eos / rate:.2f} exactly once (target > 1) " + ("OK" if ours > rate else "BEHIND")
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--peers-python", default="/tmp/eos-peers/bin/python")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(args.records, args.peers_python))

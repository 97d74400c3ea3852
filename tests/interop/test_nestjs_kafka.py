"""A real NestJS 11 service and ours call each other over a real Apache Kafka broker.

(a) Our ``KafkaClient`` calls the NestJS microservice in ``nestjs/server.js``: a reply,
    an ``RpcException`` error reply, an Observable stream, an event, and what NestJS's
    parser makes of our values and headers.
(b) NestJS's ``ClientKafka`` in ``nestjs/client.js`` calls our ``KafkaTransport`` app: a
    reply, an error reply, streamed replies (fast and slow), and an event.

Node and the npm packages (``npm ci`` in tests/interop/nestjs) are required when
``REQUIRE_NODE=1``; otherwise their absence skips the module. The broker comes from the
session fixture ``kafka_bootstrap_servers``.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import reactivex
from reactivex import operators as ops

from framework import (
    RemoteError,
    RpcException,
    controller,
    create_app,
    event_pattern,
    injectable,
    message_pattern,
    module,
)
from framework.transports.kafka import KafkaClient, KafkaTransport
from framework.transports.kafka._admin import TopicCreator
from tests.timing import TIME_FACTOR

pytestmark = [pytest.mark.interop, pytest.mark.kafka]

NEST_DIR = Path(__file__).parent / "nestjs"
PARTITIONS = 3
"""Every interop topic has several partitions, so reply partitions are really chosen."""

START_TIMEOUT = 60 * TIME_FACTOR  # seconds for a NestJS process to join its group
CALL_TIMEOUT = 15 * TIME_FACTOR  # seconds for one request/reply round trip
CLIENT_RUN_TIMEOUT = 60 * TIME_FACTOR  # seconds for the whole client.js run

NEST_REQUESTS = ["nest.sum", "nest.fail", "nest.count", "nest.ticks", "nest.inspect"]
PY_REQUESTS = ["py.sum", "py.fail", "py.count", "py.tick", "py.rx"]


def _topics(requests: list[str], events: list[str]) -> list[str]:
    return [*requests, *events, *(f"{p}.reply" for p in requests)]


def _require_node() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (NEST_DIR / "node_modules" / "@nestjs" / "microservices").is_dir():
        missing = f"npm packages missing: run `npm ci` in {NEST_DIR}"
    if missing is not None:
        if os.environ.get("REQUIRE_NODE") == "1":
            pytest.fail(f"{missing} (REQUIRE_NODE=1 makes this a failure)", pytrace=False)
        pytest.skip(missing)
    assert node is not None
    return node


async def _create_topics(bootstrap: str, topics: list[str]) -> None:
    """Create the topics up front: a NestJS consumer subscribing to a missing topic
    stalls on metadata errors, and a group that joins before a topic exists never
    reads it."""
    creator = TopicCreator(
        bootstrap,
        partitions=PARTITIONS,
        replication_factor=None,
        timeout=START_TIMEOUT,
        options={},
    )
    try:
        await creator.ensure(topics)
    finally:
        await creator.close()


def _run_id() -> str:
    return uuid.uuid4().hex[:10]


def _node_env(run: str) -> dict[str, str]:
    return {
        **os.environ,
        "NEST_CLIENT_ID": f"interop-{run}",
        "NEST_GROUP_ID": f"interop-{run}",
        "NEST_TIMEOUT_MS": str(int(CALL_TIMEOUT * 1000)),
    }


class NestServer:
    """``node server.js`` with its JSON stdout lines collected by a reader thread."""

    def __init__(self, node: str, bootstrap: str) -> None:
        # Kept open for the life of the process; closed in stop().
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            [node, "server.js", bootstrap],
            cwd=NEST_DIR,
            env=_node_env(_run_id()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=10_000)
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                self.lines.put(json.loads(raw), timeout=1)
            except (ValueError, queue.Full):
                continue
        self.lines.put(None)  # end of output

    def wait_for(self, matches: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """The first line (seen before or arriving within ``timeout`` s) that matches."""
        for line in self.seen:
            if matches(line):
                return line
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"server.js exited ({self.process.poll()}):\n{self.log()}")
            self.seen.append(line)
            if matches(line):
                return line
        raise AssertionError(f"server.js printed no matching line in {timeout:g} s:\n{self.log()}")

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._reader.join(timeout=5)
        self.stderr.close()


@pytest.fixture(scope="module")
def node() -> str:
    return _require_node()


@pytest.fixture(scope="module")
def nest_server(node: str, kafka_bootstrap_servers: str) -> Iterator[NestServer]:
    """The NestJS microservice, started once for the module and killed at the end."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(
            _create_topics(kafka_bootstrap_servers, _topics(NEST_REQUESTS, ["nest.event"]))
        )
    finally:
        loop.close()
    server = NestServer(node, kafka_bootstrap_servers)
    try:
        server.wait_for(lambda line: line.get("ready") is True, START_TIMEOUT)
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nest_client(
    nest_server: NestServer, kafka_bootstrap_servers: str
) -> AsyncIterator[KafkaClient]:
    client = KafkaClient(
        bootstrap_servers=kafka_bootstrap_servers,
        default_timeout=CALL_TIMEOUT,
        create_topics=False,  # the fixture made them, with several partitions
    )
    async with client:
        yield client


# -- (a) our KafkaClient -> the NestJS microservice ----------------------------------


async def test_python_client_gets_nestjs_reply(nest_client: KafkaClient) -> None:
    # NestJS returns the number 6; its serializer sends the text "6", which our client
    # reads back as a JSON scalar.
    assert await nest_client.send("nest.sum", [1, 2, 3]) == 6
    assert await nest_client.send("nest.sum", list(range(100))) == 4950


async def test_python_client_on_the_confluent_engine_gets_nestjs_replies(
    nest_server: NestServer, kafka_bootstrap_servers: str
) -> None:
    client = KafkaClient(
        bootstrap_servers=kafka_bootstrap_servers,
        default_timeout=CALL_TIMEOUT,
        create_topics=False,
        engine="confluent",
    )
    async with client:
        assert await client.send("nest.sum", [1, 2, 3]) == 6
        with pytest.raises(RemoteError):
            await client.send("nest.fail", {})


async def test_python_client_gets_nestjs_rpc_exception(nest_client: KafkaClient) -> None:
    with pytest.raises(RemoteError) as info:
        await nest_client.send("nest.fail", {})
    assert info.value.payload == {"status": "error", "message": "nest says no"}
    assert str(info.value) == "nest says no"
    # The service keeps serving after an error reply.
    assert await nest_client.send("nest.sum", [2, 2]) == 4


async def test_python_client_streams_nestjs_observable(nest_client: KafkaClient) -> None:
    # The Observable completes with its last item: NestJS sends is-disposed on it.
    items = [item async for item in nest_client.stream("nest.count", 3)]
    assert items == [{"i": 0}, {"i": 1}, {"i": 2}]
    # send() on a stream returns the last item.
    assert await nest_client.send("nest.count", 2) == {"i": 1}


async def test_python_client_streams_nestjs_observable_ending_late(
    nest_client: KafkaClient,
) -> None:
    # The Observable completes after its last item: NestJS sends the end-of-stream mark
    # as a record of its own (is-disposed, null value). It ends the stream; it is no item.
    items = [item async for item in nest_client.stream("nest.ticks", 3)]
    assert items == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert await nest_client.send("nest.ticks", 2) == {"i": 1}


async def test_nestjs_parser_sees_our_values_and_headers(nest_client: KafkaClient) -> None:
    # A number travels as text: NestJS hands the handler the string "42".
    number = await nest_client.send("nest.inspect", 42)
    assert (number["type"], number["data"]) == ("string", "42")
    # Objects and arrays are JSON; plain strings travel without quotes.
    obj = await nest_client.send("nest.inspect", {"a": [1, None, True]})
    assert (obj["type"], obj["data"]) == ("object", {"a": [1, None, True]})
    text = await nest_client.send("nest.inspect", "hello")
    assert (text["type"], text["data"]) == ("string", "hello")
    assert obj["recordKey"] is None
    # None travels as a null value (keyed with the correlation id: aiokafka refuses a
    # record with neither). NestJS's deserializer then falls back to the whole Kafka
    # message as the handler's payload (its own clients refuse to send null).
    null = await nest_client.send("nest.inspect", None)
    assert null["recordKey"] == null["headers"]["kafka_correlationId"]
    assert null["type"] == "object"
    assert (null["data"]["topic"], null["data"]["value"]) == ("nest.inspect", None)
    # The request headers NestJS reads; the reply partition is one of the reply topic's.
    headers = obj["headers"]
    assert headers["kafka_replyTopic"] == "nest.inspect.reply"
    assert int(headers["kafka_replyPartition"]) in range(PARTITIONS)
    assert headers["kafka_correlationId"]
    # User headers arrive as text next to NestJS's own.
    tagged = await nest_client.send("nest.inspect", [1], headers={"x-tenant": "acme"})
    assert tagged["headers"]["x-tenant"] == "acme"


async def test_python_event_reaches_nestjs_event_pattern(
    nest_client: KafkaClient, nest_server: NestServer
) -> None:
    marker = _run_id()
    await nest_client.emit("nest.event", {"id": marker, "items": [1, 2]})
    line = await asyncio.to_thread(
        nest_server.wait_for,
        lambda line: line.get("event") == "nest.event" and line["data"].get("id") == marker,
        CALL_TIMEOUT,
    )
    assert line["data"] == {"id": marker, "items": [1, 2]}
    # An event carries no request headers, so NestJS does not try to reply.
    assert "kafka_correlationId" not in line["headers"]


# -- (b) NestJS's ClientKafka -> our KafkaTransport app ------------------------------


@injectable()
class Received:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    def add(self, payload: dict[str, Any]) -> None:
        self.events.append(payload)
        self.arrived.set()


@controller()
class PyController:
    def __init__(self, received: Received) -> None:
        self.received = received

    @message_pattern("py.sum")
    def sum(self, numbers: list[int]) -> int:
        return sum(numbers)

    @message_pattern("py.fail")
    async def fail(self, payload: dict[str, Any]) -> None:
        raise RpcException("py says no")

    @message_pattern("py.count")
    async def count(self, n: int) -> AsyncIterator[dict[str, int]]:
        # NestJS sends the number 3 as the text "3"; pydantic reads it as an int.
        for i in range(n):
            yield {"i": i}

    @message_pattern("py.tick")
    async def tick(self, n: int) -> AsyncIterator[dict[str, int]]:
        # A live feed that learns it has ended only after its last item (longer than
        # the server's end-of-stream hold-back), like an Observable completing late.
        for i in range(n):
            yield {"i": i}
            await asyncio.sleep(0.1)

    @message_pattern("py.rx")
    async def rx(self, n: int) -> reactivex.Observable[dict[str, int]]:
        # An Observable handler: ClientKafka sees the same records as for a generator.
        return reactivex.interval(0.01).pipe(ops.take(n), ops.map(lambda i: {"rx": i}))

    @event_pattern("py.event")
    async def event(self, payload: dict[str, Any]) -> None:
        self.received.add(payload)


@module(controllers=[PyController], providers=[Received])
class PyModule:
    pass


async def _run_client(node: str, bootstrap: str, scenario: str, event_id: str) -> list[Any]:
    process = await asyncio.create_subprocess_exec(
        node,
        "client.js",
        bootstrap,
        scenario,
        cwd=NEST_DIR,
        env={**_node_env(_run_id()), "NEST_EVENT_ID": event_id},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(CLIENT_RUN_TIMEOUT):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = err.decode(errors="replace")[-4000:]
    assert process.returncode == 0, f"client.js exited {process.returncode}:\n{log}"
    lines = [json.loads(raw) for raw in out.decode().splitlines() if raw.startswith("{")]
    return [line for line in lines if "scenario" in line]


@pytest.mark.parametrize("engine", ["aiokafka", "confluent"])
async def test_nestjs_client_calls_python_service(
    node: str, kafka_bootstrap_servers: str, engine: Any
) -> None:
    bootstrap = kafka_bootstrap_servers
    await _create_topics(bootstrap, _topics(PY_REQUESTS, ["py.event"]))
    transport = KafkaTransport(
        bootstrap_servers=bootstrap,
        engine=engine,
        group_id=f"interop-py-{_run_id()}",
        topic_partitions=PARTITIONS,
        start_timeout=START_TIMEOUT,
    )
    event_id = _run_id()
    async with create_app(PyModule, transports=[transport]) as app:
        results = await _run_client(node, bootstrap, "all", event_id)
        received = app.get(Received)
        async with asyncio.timeout(CALL_TIMEOUT):
            while not any(e.get("id") == event_id for e in received.events):
                received.arrived.clear()
                await received.arrived.wait()

    by_name = {r["scenario"]: r for r in results}
    assert list(by_name) == ["sum", "fail", "count", "tick", "rx", "event"], results
    # NestJS's parser only JSON-decodes objects and arrays: our 6 arrives as "6", as a
    # NestJS server's would.
    assert by_name["sum"] == {"scenario": "sum", "ok": True, "value": "6"}
    # The error reply reaches the Observable's error callback as the parsed header.
    assert by_name["fail"] == {
        "scenario": "fail",
        "ok": False,
        "error": {"status": "error", "message": "py says no"},
    }
    # A fast stream: the last item carries is-disposed, so no trailing null.
    assert by_name["count"] == {
        "scenario": "count",
        "ok": True,
        "value": [{"i": 0}, {"i": 1}, {"i": 2}],
    }
    # A stream that ends late gets a separate end-of-stream record (null value):
    # NestJS's client emits that null, exactly as for a NestJS server's Observable
    # that completes after its last item.
    assert by_name["tick"] == {
        "scenario": "tick",
        "ok": True,
        "value": [{"i": 0}, {"i": 1}, None],
    }
    assert by_name["rx"] == {
        "scenario": "rx",
        "ok": True,
        "value": [{"rx": 0}, {"rx": 1}, {"rx": 2}],
    }
    assert by_name["event"] == {"scenario": "event", "ok": True, "value": "emitted"}
    assert [e for e in received.events if e.get("id") == event_id] == [
        {"id": event_id, "source": "nestjs"}
    ]

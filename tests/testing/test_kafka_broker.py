"""Tests for the local Apache Kafka broker (framework.testing.kafka) against real Kafka.

Tests marked ``kafka`` skip when no broker can be started (no Java/Maven), unless
``REQUIRE_KAFKA=1``; set ``KAFKA_BOOTSTRAP_SERVERS`` to use an existing cluster.

The fixtures ``kafka_bootstrap_servers`` and ``local_kafka_broker`` come from
``framework.testing.kafka.pytest_fixtures`` through ``tests/conftest.py`` (and the
framework's pytest plugin). They are deliberately not imported here as well: a
module-level copy of the session fixture would start a second broker.
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
from pathlib import Path

import pytest
from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)

from framework.testing.kafka import KafkaBrokerError, LocalKafkaBroker, ensure_kafka_jars, main
from tests.timing import TIME_FACTOR

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_TIMEOUT_S = 60.0 * TIME_FACTOR  # upper bound for each test body, in seconds


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def _produce(bootstrap: str, topic: str, *values: bytes) -> list[int]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=15_000,
    )
    await producer.start()
    try:
        offsets = []
        for value in values:
            meta = await producer.send_and_wait(topic, value, key=b"k")
            offsets.append(meta.offset)
        return offsets
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=15_000,
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                values.extend(r.value for r in records if r.value is not None)
        await consumer.commit()
        committed = await consumer.committed(TopicPartition(topic, 0))
        assert committed == count
        return values
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_produce_and_consume_in_a_group(kafka_bootstrap_servers: str) -> None:
    topic, group = _name("t"), _name("g")
    async with asyncio.timeout(TEST_TIMEOUT_S):
        offsets = await _produce(kafka_bootstrap_servers, topic, b"hello", b"world")
        assert offsets == [0, 1]
        assert await _consume(kafka_bootstrap_servers, topic, group, 2) == [b"hello", b"world"]


@pytest.mark.kafka
async def test_kill_and_restart_keeps_records(
    local_kafka_broker: LocalKafkaBroker,
) -> None:
    broker = local_kafka_broker
    bootstrap = broker.bootstrap_servers
    topic = _name("restart")
    async with asyncio.timeout(TEST_TIMEOUT_S):
        await _produce(bootstrap, topic, b"before-crash")
        broker.kill()
        assert not broker.is_running()
        await asyncio.to_thread(broker.restart)
        assert broker.is_running()
        assert broker.bootstrap_servers == bootstrap
        await _produce(bootstrap, topic, b"after-restart")
        values = await _consume(bootstrap, topic, _name("g"), 2)
        assert values == [b"before-crash", b"after-restart"]


@pytest.mark.kafka
def test_stop_removes_data_and_process(
    local_kafka_broker: LocalKafkaBroker,
) -> None:
    data_dir = local_kafka_broker.data_dir
    assert data_dir is not None and (data_dir / "server.properties").is_file()
    local_kafka_broker.stop()
    assert not local_kafka_broker.is_running()
    assert not data_dir.exists()
    local_kafka_broker.stop()  # idempotent


@pytest.mark.kafka
def test_module_cli_starts_and_stops_on_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    ready = threading.Event()
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "framework.testing.kafka"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
                    ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + TEST_TIMEOUT_S
        try:
            while not ready.wait(0.2) and proc.poll() is None and time.monotonic() < deadline:
                pass
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30 * TIME_FACTOR)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        reader.join(timeout=5)
    output = "\n".join(lines)
    if not ready.is_set() and code == 1 and os.environ.get("REQUIRE_KAFKA") != "1":
        pytest.skip(f"broker could not start: {output[-2000:]}")
    assert ready.is_set(), output
    assert code == 0, output
    assert any(line.startswith("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:") for line in lines), output


def test_main_uses_existing_cluster_from_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.out == "KAFKA_BOOTSTRAP_SERVERS=kafka.example:9092\n"
    assert "existing" in captured.err


def test_maven_failure_names_the_command(tmp_path: Path) -> None:
    fake_mvn = tmp_path / "fake-mvn"
    fake_mvn.write_text(
        "#!/bin/sh\necho '[ERROR] Could not resolve org.apache.kafka:kafka_2.13'\nexit 1\n"
    )
    fake_mvn.chmod(0o755)
    with pytest.raises(KafkaBrokerError) as info:
        ensure_kafka_jars(tmp_path / "cache", mvn=str(fake_mvn))
    message = str(info.value)
    assert f"exit code 1: {fake_mvn} -B -q" in message
    assert "copy-dependencies" in message
    assert message.endswith("[ERROR] Could not resolve org.apache.kafka:kafka_2.13")


def test_missing_maven_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaBrokerError, match="not found on PATH"):
        ensure_kafka_jars(tmp_path, mvn="definitely-not-mvn-here")


def test_security_options_are_checked_before_anything_starts() -> None:
    with pytest.raises(KafkaBrokerError, match="unknown security 'tls': use one of ssl"):
        LocalKafkaBroker(security="tls")
    with pytest.raises(KafkaBrokerError, match="sasl_password must be 1-64 letters"):
        LocalKafkaBroker(security="sasl_ssl", sasl_password='a"b')
    broker = LocalKafkaBroker(security=["SASL_SSL", "ssl", "sasl_ssl"])
    assert broker.security == ("SASL_SSL", "SSL")
    assert broker.ca_file is None  # made at start
    with pytest.raises(KafkaBrokerError, match="no SASL_PLAINTEXT listener"):
        broker.secure_bootstrap_servers("sasl_plaintext")
    with pytest.raises(KafkaBrokerError, match="no secured listener"):
        LocalKafkaBroker().client_security()


def test_secured_listeners_are_configured_with_their_own_names() -> None:
    from framework.testing.kafka.security import listener_properties, scram_arguments

    listeners, props = listener_properties(
        {"SASL_PLAINTEXT": 9001}, host="127.0.0.1", tls=None, username="u", password="p"
    )
    assert listeners == ["SASL_PLAINTEXT://127.0.0.1:9001"]
    assert props["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    assert 'user_u="p"' in props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert "ssl.keystore.location" not in props
    assert scram_arguments("u", "p") == [
        "--add-scram", "SCRAM-SHA-256=[name=u,password=p]",
        "--add-scram", "SCRAM-SHA-512=[name=u,password=p]",
    ]  # fmt: skip

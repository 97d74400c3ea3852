"""``framework kafka start`` delegates to the local broker of ``framework.testing.kafka``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from framework.testing.kafka import kafka_version
from framework.transports.kafka import KafkaClient, KafkaSecurity
from tests.cli.helpers import COMMAND_TIMEOUT_S, cli, kill, start
from tests.timing import TIME_FACTOR

BROKER_START_TIMEOUT_S = 180.0 * TIME_FACTOR
"""The first start resolves the Kafka jars with Maven; later ones take seconds."""


def test_kafka_start_uses_an_existing_cluster_from_the_environment() -> None:
    result = cli("kafka", "start", extra_env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092"


def test_kafka_start_passes_options_and_help_through() -> None:
    result = cli("kafka", "start", "--help")
    assert result.returncode == 0
    assert "--startup-timeout" in result.stdout and "--heap" in result.stdout


@pytest.mark.kafka
def test_kafka_start_runs_a_broker_until_sigint() -> None:
    proc, out, err = start("kafka", "start")
    try:
        try:
            found = out.wait_for(r"^KAFKA_BOOTSTRAP_SERVERS=(\S+)$", BROKER_START_TIMEOUT_S)
        except AssertionError:
            reason = f"cannot start a local Kafka broker:\n{err.rest(COMMAND_TIMEOUT_S)}"
            if os.environ.get("REQUIRE_KAFKA") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
        bootstrap = found.group(1)

        async def connect() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
            await producer.start()  # fetches cluster metadata from the broker
            await producer.stop()

        asyncio.run(asyncio.wait_for(connect(), 30 * TIME_FACTOR))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) == 0
        assert "Stopping Kafka" in err.rest(COMMAND_TIMEOUT_S)
    finally:
        kill(proc)


@pytest.mark.kafka
def test_kafka_start_with_security_prints_what_a_client_needs() -> None:
    proc, out, err = start(
        "kafka", "start", "--security", "sasl_ssl", "--sasl-password", "s3cret-pw",
        extra_env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092"},  # ignored: --security
    )  # fmt: skip
    try:
        try:
            out.wait_for(r"^KAFKA_BOOTSTRAP_SERVERS=(\S+)$", BROKER_START_TIMEOUT_S)
        except AssertionError:
            reason = f"cannot start a local Kafka broker:\n{err.rest(COMMAND_TIMEOUT_S)}"
            if os.environ.get("REQUIRE_KAFKA") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
        out.wait_for(r"^KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS=", COMMAND_TIMEOUT_S)
        settings = dict(line.strip().split("=", 1) for line in out.seen)
        assert settings["KAFKA_BOOTSTRAP_SERVERS"] != "127.0.0.1:19092"
        assert settings["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert settings["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert settings["KAFKA_SASL_PASSWORD"] == "s3cret-pw"
        security = KafkaSecurity(
            protocol=settings["KAFKA_SECURITY_PROTOCOL"],
            ca_file=settings["KAFKA_SSL_CA_FILE"],
            mechanism=settings["KAFKA_SASL_MECHANISM"],
            username=settings["KAFKA_SASL_USERNAME"],
            password=settings["KAFKA_SASL_PASSWORD"],
        )

        async def connect() -> None:
            client = KafkaClient(
                bootstrap_servers=settings["KAFKA_BOOTSTRAP_SERVERS"], security=security
            )
            async with client:  # producer, reply reader and admin all log in
                await client.emit("cli.secure", {"ok": True})

        asyncio.run(asyncio.wait_for(connect(), 30 * TIME_FACTOR))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) == 0
    finally:
        kill(proc)


def test_maven_download_lines_are_recognised() -> None:
    from framework.testing.kafka.jars import downloaded

    line = (
        "[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/org/apache/kafka/"
        "kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar (6.6 MB at 3.1 MB/s)"
    )
    assert downloaded(line) == ("kafka_2.13-4.1.1.jar", "6.6 MB")
    assert downloaded("[INFO] Downloading from central: https://x/y/z.jar") is None


@pytest.mark.kafka
def test_kafka_fetch_resolves_into_the_cache_and_tells_how_far(tmp_path: Path) -> None:
    env = {"FRAMEWORK_CACHE_DIR": str(tmp_path)}
    first = cli("kafka", "fetch", extra_env=env)
    if first.returncode != 0 and os.environ.get("REQUIRE_KAFKA") != "1":
        pytest.skip(f"Maven cannot resolve the Kafka jars here: {first.stderr}")
    assert first.returncode == 0, first.stderr
    libs = Path(first.stdout.strip())
    assert libs.parent.parent == tmp_path and any(libs.glob("kafka_2.13-*.jar"))
    lines = first.stderr.splitlines()
    assert lines[0] == f"Resolving Kafka {kafka_version()} jars with Maven into {libs}"
    assert re.fullmatch(r"  Maven done in [\d.]+ s \(\d+ files downloaded\)", lines[-2])
    assert re.fullmatch(rf"  \d+ jars \([\d.]+ MB\) in {re.escape(str(libs))}", lines[-1])
    again = cli("kafka", "fetch", extra_env=env)  # cached: no Maven run, nothing to tell
    assert again.returncode == 0 and again.stdout == first.stdout and again.stderr == ""

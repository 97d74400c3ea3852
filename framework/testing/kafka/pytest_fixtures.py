"""Pytest fixtures that provide a real Apache Kafka broker.

Import the fixtures into a test module or ``conftest.py``::

    from framework.testing.kafka.pytest_fixtures import kafka_bootstrap_servers  # noqa: F401

Environment:
    KAFKA_BOOTSTRAP_SERVERS: use this existing cluster instead of starting a broker.
    REQUIRE_KAFKA: ``1`` turns "cannot start a broker" into a test failure instead of
        a skip (set it in CI, where Kafka must be tested).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from framework.testing.kafka.broker import BOOTSTRAP_ENV_VAR, KafkaBrokerError, LocalKafkaBroker

__all__ = [
    "kafka_bootstrap_servers",
    "kafka_secure_broker",
    "local_kafka_broker",
    "start_broker_or_skip",
]

REQUIRE_ENV_VAR = "REQUIRE_KAFKA"


def start_broker_or_skip(broker: LocalKafkaBroker) -> LocalKafkaBroker:
    """Start *broker*; skip the test if that fails, or fail it when ``REQUIRE_KAFKA=1``.

    Args:
        broker: A broker that is not running yet.

    Returns:
        The started broker.
    """
    try:
        return broker.start()
    except (KafkaBrokerError, OSError) as exc:
        reason = f"cannot start a local Apache Kafka broker: {exc}"
        if os.environ.get(REQUIRE_ENV_VAR) == "1":
            pytest.fail(f"{reason}\n({REQUIRE_ENV_VAR}=1 makes this a failure)", pytrace=False)
        pytest.skip(f"{reason}\n(set {BOOTSTRAP_ENV_VAR} to use an existing cluster)")


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    """Bootstrap servers of a Kafka cluster shared by the whole test session.

    Yields ``$KAFKA_BOOTSTRAP_SERVERS`` if set; otherwise starts one
    :class:`LocalKafkaBroker` for the session and stops it at the end.
    """
    existing = os.environ.get(BOOTSTRAP_ENV_VAR)
    if existing:
        yield existing
        return
    broker = start_broker_or_skip(LocalKafkaBroker())
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def local_kafka_broker() -> Iterator[LocalKafkaBroker]:
    """A dedicated, freshly started :class:`LocalKafkaBroker` for one test.

    For tests that kill or restart the broker; always local, even when
    ``$KAFKA_BOOTSTRAP_SERVERS`` is set.
    """
    broker = start_broker_or_skip(LocalKafkaBroker())
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_secure_broker() -> Iterator[LocalKafkaBroker]:
    """A local broker for the whole session with an ``SSL``, a ``SASL_PLAINTEXT`` and a
    ``SASL_SSL`` listener (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512), besides PLAINTEXT.

    Connect with ``broker.secure_bootstrap_servers("sasl_ssl")`` and
    ``broker.client_security("sasl_ssl")``. Always local, even when
    ``$KAFKA_BOOTSTRAP_SERVERS`` is set (that cluster's security is not known here).
    """
    broker = start_broker_or_skip(LocalKafkaBroker(security=("ssl", "sasl_plaintext", "sasl_ssl")))
    try:
        yield broker
    finally:
        broker.stop()

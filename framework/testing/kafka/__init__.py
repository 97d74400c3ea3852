"""A real Apache Kafka 4.x broker for tests and local development, run from Maven jars.

See :mod:`framework.testing.kafka.broker` and ``docs/kafka-local-broker.md``. Modules:
``jars`` (Maven resolution and cache), ``config`` (ports, ``server.properties``, storage
format), ``readiness`` (Metadata probe), ``logs`` (log tails for errors), ``security`` (TLS
material made with keytool, SASL listener settings), ``broker``
(:class:`LocalKafkaBroker`) and ``cli`` (:func:`main`).
"""

from framework.testing.kafka.broker import LocalKafkaBroker
from framework.testing.kafka.cli import main
from framework.testing.kafka.errors import BOOTSTRAP_ENV_VAR, KafkaBrokerError
from framework.testing.kafka.jars import (
    CACHE_DIR_ENV_VAR,
    default_cache_root,
    ensure_kafka_jars,
    kafka_version,
)

__all__ = [
    "BOOTSTRAP_ENV_VAR",
    "CACHE_DIR_ENV_VAR",
    "KafkaBrokerError",
    "LocalKafkaBroker",
    "default_cache_root",
    "ensure_kafka_jars",
    "kafka_version",
    "main",
]

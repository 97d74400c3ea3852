"""A real Apache Kafka 4.x broker for tests and local development, run from Maven jars.

See :mod:`framework.testing.kafka.broker` and ``docs/kafka-local-broker.md``.
"""

from framework.testing.kafka.broker import (
    BOOTSTRAP_ENV_VAR,
    CACHE_DIR_ENV_VAR,
    KafkaBrokerError,
    LocalKafkaBroker,
    default_cache_root,
    ensure_kafka_jars,
    kafka_version,
    main,
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

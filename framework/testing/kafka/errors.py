"""The one exception of the local Kafka broker, and the variable its messages point to."""

from __future__ import annotations

__all__ = ["BOOTSTRAP_ENV_VAR", "KafkaBrokerError"]

BOOTSTRAP_ENV_VAR = "KAFKA_BOOTSTRAP_SERVERS"
"""If set, tools use this existing cluster instead of starting a local broker."""


class KafkaBrokerError(RuntimeError):
    """Resolving, formatting, starting or stopping the local Kafka broker failed."""

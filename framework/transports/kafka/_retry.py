"""What to do when an event handler fails: retry with backoff, then dead-letter. Pure.

Per-handler options come from the pattern decorator's extras, for example
``@event_pattern("orders.created", max_retries=5, retry_backoff=0.5, dlq="orders.dead")``;
the transport's keyword arguments are the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from framework.backoff import Backoff
from framework.exceptions import ConfigurationError

EXTRAS = frozenset({"max_retries", "retry_backoff", "retry_backoff_max", "dlq"})
"""Handler extras this transport reads."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries and dead-lettering for one handler.

    Attributes:
        max_retries: calls after the first failure (0: dead-letter at once).
        retry_backoff: seconds before the first retry; doubles on each retry.
        retry_backoff_max: ceiling of the wait between retries, in seconds.
        dlq: the dead-letter topic; ``None`` means ``<topic><dlq_suffix>``; ``False``
            drops the record after logging it.
        jitter: fraction of each wait taken off at random (``framework.backoff``);
            0 makes the waits exact.
    """

    max_retries: int = 3
    retry_backoff: float = 0.2
    retry_backoff_max: float = 5.0
    dlq: str | bool | None = None
    jitter: float = 0.1
    backoff: Backoff = field(init=False, repr=False, compare=False)
    """The retry waits: ``retry_backoff`` doubling up to ``retry_backoff_max``."""

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError("max_retries must be 0 or more")
        if self.retry_backoff < 0 or self.retry_backoff_max < 0:
            raise ConfigurationError("retry_backoff and retry_backoff_max must be 0 or more")
        if self.dlq is True or self.dlq == "":
            raise ConfigurationError("dlq is a topic name, None (the default topic) or False")
        backoff = Backoff(self.retry_backoff, self.retry_backoff_max, jitter=self.jitter)
        object.__setattr__(self, "backoff", backoff)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return self.backoff.delay(retry)

    def dead_letter_topic(self, topic: str, suffix: str) -> str | None:
        """Where a record of ``topic`` goes when it gives up, or ``None`` to drop it."""
        if self.dlq is False:
            return None
        if isinstance(self.dlq, str):
            return self.dlq
        return topic + suffix

    def with_extras(self, extras: Mapping[str, Any], owner: str) -> RetryPolicy:
        """This policy overridden by a handler's decorator extras."""
        chosen = {k: v for k, v in extras.items() if k in EXTRAS}
        if not chosen:
            return self
        try:
            return RetryPolicy(**{**self._as_dict(), **chosen})
        except (TypeError, ConfigurationError) as exc:
            raise ConfigurationError(f"{owner}: invalid Kafka retry options: {exc}") from exc

    def _as_dict(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_retries,
            "retry_backoff": self.retry_backoff,
            "retry_backoff_max": self.retry_backoff_max,
            "dlq": self.dlq,
            "jitter": self.jitter,
        }


def is_poison(exc: BaseException) -> bool:
    """A failure that retrying cannot fix: the record does not decode or validate."""
    return isinstance(exc, ValidationError | UnicodeDecodeError)

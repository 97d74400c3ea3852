"""Kafka engines: the client library under the transport, the client and the relay.

The transport's logic (lanes, watermark commits, retries and dead letters, replies) is
one code path written against the small part of aiokafka's client API it uses:

- consumer: ``start``, ``stop``, ``subscribe(topics= | pattern=, listener=)`` with an
  aiokafka ``ConsumerRebalanceListener`` (its coroutines awaited on the event loop),
  ``getmany(*partitions, timeout_ms, max_records)`` returning ``{TopicPartition:
  [record]}``, ``assignment``, ``position``, ``seek``, ``commit({tp: offset})``,
  ``highwater``, and for the client's reply reader ``assign`` and ``end_offsets``;
- producer: ``start``, ``stop``, ``send(...)`` returning the broker ack's future,
  ``send_and_wait``, ``partitions_for``;
- records with ``topic``, ``partition``, ``offset``, ``timestamp`` (ms), ``key``,
  ``value``, ``headers`` (``(name, bytes)`` pairs);
- errors as ``aiokafka.errors`` classes (``KafkaError`` with ``retriable``,
  ``CommitFailedError``, ``ConsumerStoppedError``).

``"aiokafka"`` (the default) is aiokafka itself. ``"confluent"`` (``confluent.py``)
drives confluent-kafka (librdkafka) behind that same interface; it is imported only
when asked for, and needs the ``framework[confluent]`` extra.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from framework.exceptions import ConfigurationError

EngineName = Literal["aiokafka", "confluent"]


@dataclass(frozen=True, slots=True)
class Engine:
    """One client library.

    Attributes:
        name: ``"aiokafka"`` or ``"confluent"``.
        consumer: makes a consumer; takes aiokafka's keyword arguments.
        producer: makes a producer; takes aiokafka's keyword arguments.
        check: raises ``ConfigurationError`` for options the engine cannot honour
            (called at construction, so a typo fails before ``start``).
    """

    name: EngineName
    consumer: Callable[..., Any]
    producer: Callable[..., Any]
    check: Callable[[Mapping[str, Any], str], None]


def _accept(options: Mapping[str, Any], owner: str) -> None:
    return None


def engine(name: str, owner: str) -> Engine:
    """The engine called ``name``.

    Raises:
        ConfigurationError: an unknown name, or ``"confluent"`` without confluent-kafka
            installed.
    """
    if name == "aiokafka":
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]

        return Engine("aiokafka", AIOKafkaConsumer, AIOKafkaProducer, _accept)
    if name == "confluent":
        if importlib.util.find_spec("confluent_kafka") is None:
            raise ConfigurationError(
                f'{owner}(engine="confluent") needs confluent-kafka: '
                'pip install "framework[confluent]"'
            )
        from framework.transports.kafka._engines import confluent

        return Engine("confluent", confluent.Consumer, confluent.Producer, confluent.check)
    raise ConfigurationError(f'{owner} engine is "aiokafka" or "confluent", not {name!r}')

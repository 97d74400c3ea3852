"""Apache Kafka transport (aiokafka), NestJS-compatible on the wire.

- ``KafkaTransport``: serve ``@message_pattern``/``@event_pattern`` handlers from topics,
  at least once, with retries and a dead-letter topic.
- ``KafkaClient``: a ``ClientProxy`` for ``send``/``stream``/``emit``.
- ``KafkaRelay``: carry ``app.publish`` events to every instance.
- ``KafkaContext``: the record a handler is handling; ``send`` produces from it.
- ``TumblingWindow``/``HoppingWindow``/``SessionWindow``: ``window=`` of a handler
  whose results are aggregated per key and emitted as each window closes.
- ``KafkaTable``: a keyed table handlers read and write, rebuilt from a changelog.
- ``KafkaSecurity``: TLS and SASL settings (``security=``) of the transport, client and
  relay.
- ``KafkaRecord``: a result of an ``emits=`` handler with its own key, headers or topic.

See docs/transports/kafka.md.
"""

from framework.transports.kafka._produce import KafkaRecord
from framework.transports.kafka._retry import RetryPolicy
from framework.transports.kafka._tables import KafkaTable
from framework.transports.kafka._windows import HoppingWindow, SessionWindow, TumblingWindow
from framework.transports.kafka.client import KafkaClient
from framework.transports.kafka.context import KafkaContext
from framework.transports.kafka.relay import KafkaRelay
from framework.transports.kafka.security import KafkaSecurity
from framework.transports.kafka.server import KafkaTransport

__all__ = [
    "HoppingWindow",
    "KafkaClient",
    "KafkaContext",
    "KafkaRecord",
    "KafkaRelay",
    "KafkaSecurity",
    "KafkaTable",
    "KafkaTransport",
    "RetryPolicy",
    "SessionWindow",
    "TumblingWindow",
]

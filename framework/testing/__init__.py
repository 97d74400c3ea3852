"""Testing utilities: the testing module, a pytest plugin, and a local Kafka broker."""

from framework.testing._kafka_double import KafkaTestBroker, KafkaTestClient
from framework.testing._live import EventStream, ReceivedEvent
from framework.testing.module import TestingApp, TestingModuleBuilder, create_testing_module

__all__ = [
    "EventStream",
    "KafkaTestBroker",
    "KafkaTestClient",
    "ReceivedEvent",
    "TestingApp",
    "TestingModuleBuilder",
    "create_testing_module",
]

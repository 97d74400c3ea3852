"""Testing utilities: the testing module, a pytest plugin, and a local Kafka broker."""

from framework.testing._live import EventStream, ReceivedEvent
from framework.testing.module import TestingApp, TestingModuleBuilder, create_testing_module

__all__ = [
    "EventStream",
    "ReceivedEvent",
    "TestingApp",
    "TestingModuleBuilder",
    "create_testing_module",
]

"""Testing utilities: the testing module, a pytest plugin, and a local Kafka broker."""

from framework.testing.module import TestingApp, TestingModuleBuilder, create_testing_module

__all__ = ["TestingApp", "TestingModuleBuilder", "create_testing_module"]

"""Metrics need the optional prometheus-client; nothing else does."""

from __future__ import annotations

import sys

import pytest

from framework import ConfigurationError
from framework.observability import PROMETHEUS_REQUIREMENT, Observability


def test_missing_prometheus_client_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    with pytest.raises(ConfigurationError, match="pip install 'prometheus-client"):
        Observability(metrics_path="/metrics")
    Observability()  # health and tracing need nothing extra
    assert PROMETHEUS_REQUIREMENT == "prometheus-client>=0.20"


def test_public_names_are_documented() -> None:
    import framework.observability as observability

    for name in observability.__all__:
        value = getattr(observability, name)
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"

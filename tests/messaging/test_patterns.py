"""Wildcard matching and precedence: pure functions, no event loop."""

import pytest

from framework import ConfigurationError
from framework.messaging._patterns import matches, specificity, validate_pattern


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("orders.created", "orders.created", True),
        ("orders.created", "orders.created.eu", False),
        ("orders.*", "orders.created", True),
        ("orders.*", "orders.eu.created", False),
        ("orders.#", "orders.eu.created", True),
        ("orders.#", "orders", False),
        ("*.created", "users.created", True),
        ("orders.+", "orders.x", False),
    ],
)
def test_matches(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


def test_more_literal_segments_sort_first_and_star_before_hash() -> None:
    ordered = sorted(["#", "orders.#", "orders.*", "*.*"], key=specificity)
    assert ordered == ["orders.*", "orders.#", "*.*", "#"]


def test_hash_only_at_the_end() -> None:
    with pytest.raises(ConfigurationError, match="last segment"):
        validate_pattern("orders.#.created")
    with pytest.raises(ConfigurationError, match="empty"):
        validate_pattern("")

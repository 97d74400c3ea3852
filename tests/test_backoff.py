"""The backoff helper every retry loop uses: growth, ceiling, jitter. Pure."""

from __future__ import annotations

import random

import pytest

from framework.backoff import Backoff
from framework.exceptions import ConfigurationError


def test_waits_double_up_to_the_ceiling_without_jitter() -> None:
    backoff = Backoff(0.1, 0.5, jitter=0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert Backoff(1.0, 10.0, multiplier=3.0, jitter=0).delay(3) == 9.0
    assert Backoff(0.3, 5.0, multiplier=1.0, jitter=0).delay(50) == 0.3


def test_jitter_shortens_each_wait_by_at_most_its_fraction() -> None:
    backoff = Backoff(0.1, 0.5, jitter=0.2, rng=random.Random(7))
    waits = [backoff.delay(5) for _ in range(200)]
    assert all(0.4 <= w <= 0.5 for w in waits)  # never above the ceiling
    assert len(set(waits)) > 100  # spread, not lockstep


def test_a_seeded_random_source_repeats_its_waits() -> None:
    first = Backoff(0.2, 5.0, rng=random.Random(1))
    second = Backoff(0.2, 5.0, rng=random.Random(1))
    assert [first.delay(n) for n in range(1, 8)] == [second.delay(n) for n in range(1, 8)]


def test_a_loop_failing_forever_stays_at_the_ceiling() -> None:
    assert Backoff(0.2, 5.0, jitter=0).delay(100_000) == 5.0
    assert Backoff(0.0, 5.0).delay(100_000) == 0.0


@pytest.mark.parametrize(
    ("args", "options", "word"),
    [
        ((-1, 1), {}, "0 or more"),
        ((1, -1), {}, "0 or more"),
        ((1, 1), {"multiplier": 0.5}, "multiplier"),
        ((1, 1), {"jitter": 1.5}, "jitter"),
        ((1, 1), {"jitter": -0.1}, "jitter"),
    ],
)
def test_nonsense_settings_are_configuration_errors(
    args: tuple[float, float], options: dict[str, float], word: str
) -> None:
    with pytest.raises(ConfigurationError, match=word):
        Backoff(*args, **options)

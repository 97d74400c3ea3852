"""Hypothesis profiles for the fuzz suite.

``ci`` (the default): a fixed seed (``derandomize``) and a bounded number of examples,
so a run takes seconds and fails the same way every time. ``long`` (``make fuzz``):
many more examples from a random seed. Choose with ``FUZZ_PROFILE``; ``FUZZ_EXAMPLES``
overrides the count of either.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")),
    deadline=None,
    database=None,
    suppress_health_check=_SLOW_OK,
)
settings.load_profile(os.environ.get("FUZZ_PROFILE", "ci"))

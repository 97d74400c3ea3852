"""Timeouts in tests scale with ``TEST_TIME_FACTOR`` (slow or loaded machines set it > 1)."""

import os

TIME_FACTOR = float(os.environ.get("TEST_TIME_FACTOR", "1"))

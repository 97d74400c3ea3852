"""``python -m example_app``: serve the app; settings from the environment."""

import sys

from framework import ConfigurationError
from framework.observability import configure_logging

try:
    from example_app.main import app, settings
except ConfigurationError as exc:  # a bad variable: say which, without a traceback
    sys.exit(f"error: {exc}")

configure_logging(json=settings.log_format == "json")  # level: $LOG_LEVEL
app.run(host=settings.host, port=settings.port)

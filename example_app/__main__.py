import os

from example_app.main import app
from framework.observability import configure_logging

configure_logging(json=os.environ.get("LOG_FORMAT", "json") == "json")  # level: $LOG_LEVEL
app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))

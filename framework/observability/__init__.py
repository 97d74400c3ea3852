"""Operations: health endpoints, structured logging, Prometheus metrics, trace context.

Example::

    from framework.observability import Observability, configure_logging

    configure_logging()                       # JSON lines; level from $FRAMEWORK_LOG_LEVEL
    app = create_app(AppModule, transports=[...], observability=Observability(
        health_path="/health",                # GET /health/live, GET /health/ready
        metrics_path="/metrics",              # needs prometheus-client
    ))

See docs/operations.md. Nothing here costs anything per message unless it is turned on.
"""

from framework.observability._context import (
    MessageScope,
    current_message,
    parse_traceparent,
    trace_headers,
)
from framework.observability._logging import (
    ContextFilter,
    JsonFormatter,
    configure_logging,
)
from framework.observability._metrics import (
    DEFAULT_BUCKETS,
    PROMETHEUS_REQUIREMENT,
    MessageMetrics,
    MetricsCollector,
)
from framework.observability._setup import Installation, Observability, install

__all__ = [
    "DEFAULT_BUCKETS",
    "PROMETHEUS_REQUIREMENT",
    "ContextFilter",
    "Installation",
    "JsonFormatter",
    "MessageMetrics",
    "MessageScope",
    "MetricsCollector",
    "Observability",
    "configure_logging",
    "current_message",
    "install",
    "parse_traceparent",
    "trace_headers",
]

"""Message metrics: plain counters updated per message, exposed through prometheus-client.

Per message the cost is a clock read, a bisect and two integer additions: no lock, no
label lookup (each handler holds its own series per transport). prometheus-client only
runs at scrape time, when ``MetricsCollector.collect`` turns the counters into metric
families. Everything runs on the event loop's thread, so the counters need no lock; a
scrape from another thread may read a histogram mid-update, off by one observation.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from framework.exceptions import ConfigurationError
from framework.transports.base import TransportEvents

if TYPE_CHECKING:
    from framework.messaging.router import MessageHandler
    from framework.transports.base import Transport

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds, in seconds, of the handler latency histogram's buckets."""

PROMETHEUS_REQUIREMENT = "prometheus-client>=0.20"

LABELS = ("transport", "pattern", "handler")


def prometheus() -> Any:
    """The ``prometheus_client`` module (an optional dependency).

    Raises:
        ConfigurationError: prometheus-client is not installed.
    """
    try:
        # Typed loosely on purpose: mypy must pass where the package is not installed.
        import prometheus_client  # type: ignore[import-not-found, unused-ignore]
        import prometheus_client.core  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ConfigurationError(
            "Metrics need prometheus-client, which is not installed: "
            f"`pip install '{PROMETHEUS_REQUIREMENT}'` (or the framework's `metrics` extra), "
            "or leave metrics_path=None"
        ) from None
    return prometheus_client


class Series:
    """Counters of one handler on one transport."""

    __slots__ = ("bounds", "buckets", "dead_lettered", "failed", "handled", "retried", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.handled = 0
        self.failed = 0
        self.retried = 0
        self.dead_lettered = 0
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def ok(self, seconds: float) -> None:
        self.handled += 1
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def error(self, seconds: float) -> None:
        self.failed += 1
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


class HandlerSeries:
    """One handler's series by transport name, created on first use."""

    __slots__ = ("by_transport", "metrics", "name", "pattern")

    def __init__(self, metrics: MessageMetrics, handler: MessageHandler) -> None:
        self.metrics = metrics
        self.name = handler.name
        self.pattern = handler.pattern
        self.by_transport: dict[str | None, Series] = {}

    def get(self, transport: str | None) -> Series:
        try:
            return self.by_transport[transport]
        except KeyError:
            series = self.by_transport[transport] = Series(self.metrics.buckets)
            return series


class MessageMetrics:
    """Every handler's series, and the transports to ask for gauges at scrape time.

    Args:
        buckets: histogram upper bounds in seconds, ascending.
        prefix: the metric names' prefix.
    """

    def __init__(
        self, buckets: Sequence[float] = DEFAULT_BUCKETS, prefix: str = "framework"
    ) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ConfigurationError("Histogram buckets must be distinct and ascending")
        self.buckets = tuple(float(b) for b in buckets)
        self.prefix = prefix
        self.handlers: dict[MessageHandler, HandlerSeries] = {}
        self.transports: list[Transport] = []
        # From transport events: open connections by transport name (for transports
        # that do not count their own), and clients cut off by (transport, why).
        self.connections: dict[str, int] = {}
        self.dropped: dict[tuple[str, str], int] = {}

    def series(self, handler: MessageHandler) -> HandlerSeries:
        found = self.handlers.get(handler)
        if found is None:
            found = self.handlers[handler] = HandlerSeries(self, handler)
        return found

    def rows(self) -> Iterator[tuple[tuple[str, str, str], Series]]:
        for handler_series in list(self.handlers.values()):
            for transport, series in list(handler_series.by_transport.items()):
                labels = (transport or "unknown", handler_series.pattern, handler_series.name)
                yield labels, series


class MetricsEvents(TransportEvents):
    """The transport events metrics count (what ``host.events`` reports to)."""

    def __init__(self, metrics: MessageMetrics) -> None:
        self.metrics = metrics

    def retried(self, transport: Transport, handler: MessageHandler) -> None:
        self.metrics.series(handler).get(transport.name).retried += 1

    def dead_lettered(self, transport: Transport, handler: MessageHandler) -> None:
        self.metrics.series(handler).get(transport.name).dead_lettered += 1

    def connected(self, transport: Transport, peer: Any) -> None:
        connections = self.metrics.connections
        connections[transport.name] = connections.get(transport.name, 0) + 1

    def disconnected(self, transport: Transport, peer: Any) -> None:
        connections = self.metrics.connections
        connections[transport.name] = max(connections.get(transport.name, 0) - 1, 0)

    def dropped(self, transport: Transport, peer: Any, why: str) -> None:
        key = (transport.name, why)
        self.metrics.dropped[key] = self.metrics.dropped.get(key, 0) + 1


class MetricsCollector:
    """A prometheus-client collector over ``MessageMetrics`` (register it in any
    ``CollectorRegistry``)."""

    def __init__(self, metrics: MessageMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        # Names let a registry refuse a second collector exposing the same metrics.
        core = prometheus().core
        CounterMetricFamily, GaugeMetricFamily = core.CounterMetricFamily, core.GaugeMetricFamily
        HistogramMetricFamily = core.HistogramMetricFamily
        p = self.metrics.prefix
        return [
            CounterMetricFamily(f"{p}_messages_handled", "", labels=LABELS),
            CounterMetricFamily(f"{p}_messages_failed", "", labels=LABELS),
            CounterMetricFamily(f"{p}_messages_retried", "", labels=LABELS),
            CounterMetricFamily(f"{p}_messages_dead_lettered", "", labels=LABELS),
            HistogramMetricFamily(f"{p}_handler_duration_seconds", "", labels=LABELS),
            CounterMetricFamily(f"{p}_clients_dropped", "", labels=("transport", "reason")),
            GaugeMetricFamily(f"{p}_connected_clients", "", labels=("transport",)),
            GaugeMetricFamily(
                f"{p}_kafka_consumer_lag", "", labels=("group", "topic", "partition")
            ),
            CounterMetricFamily(f"{p}_kafka_transactions_aborted", "", labels=("group",)),
            GaugeMetricFamily(f"{p}_kafka_state_size", "", labels=("group",)),
            CounterMetricFamily(f"{p}_kafka_windows_closed", "", labels=("group",)),
            CounterMetricFamily(f"{p}_kafka_late_records", "", labels=("group",)),
        ]

    def collect(self) -> Iterator[Any]:
        core = prometheus().core
        CounterMetricFamily, GaugeMetricFamily = core.CounterMetricFamily, core.GaugeMetricFamily
        HistogramMetricFamily = core.HistogramMetricFamily
        m, p = self.metrics, self.metrics.prefix
        handled = CounterMetricFamily(
            f"{p}_messages_handled",
            "Handler calls that returned (a stream counts when it ends).",
            labels=LABELS,
        )
        failed = CounterMetricFamily(
            f"{p}_messages_failed",
            "Handler calls that raised (every Kafka retry attempt counts).",
            labels=LABELS,
        )
        retried = CounterMetricFamily(
            f"{p}_messages_retried", "Retries of a failed handler (Kafka).", labels=LABELS
        )
        dead = CounterMetricFamily(
            f"{p}_messages_dead_lettered",
            "Records given up after retries: sent to the dead-letter topic, or dropped "
            "with dlq=False (Kafka).",
            labels=LABELS,
        )
        latency = HistogramMetricFamily(
            f"{p}_handler_duration_seconds",
            "Time from handler call to result or error (streams are not timed).",
            labels=LABELS,
        )
        bounds = [_le(b) for b in m.buckets] + ["+Inf"]
        for labels, s in m.rows():
            handled.add_metric(labels, s.handled)
            failed.add_metric(labels, s.failed)
            retried.add_metric(labels, s.retried)
            dead.add_metric(labels, s.dead_lettered)
            cumulative, running = [], 0
            for le, count in zip(bounds, s.buckets, strict=True):
                running += count
                cumulative.append((le, float(running)))
            latency.add_metric(labels, cumulative, s.total)
        yield from (handled, failed, retried, dead, latency)

        dropped = CounterMetricFamily(
            f"{p}_clients_dropped",
            "Clients cut off by a transport (SSE: a client not reading), by reason.",
            labels=("transport", "reason"),
        )
        for (name, why), count in sorted(m.dropped.items()):
            dropped.add_metric([name, why], count)
        yield dropped

        clients = GaugeMetricFamily(
            f"{p}_connected_clients",
            "Open WebSocket connections and SSE streams (and connections other transports report).",
            labels=("transport",),
        )
        counted: set[str] = set()
        lag = GaugeMetricFamily(
            f"{p}_kafka_consumer_lag",
            "Records not yet handled per assigned partition: the high watermark of the "
            "last fetch minus the offset after the last handled record.",
            labels=("group", "topic", "partition"),
        )
        transactions = CounterMetricFamily(
            f"{p}_kafka_transactions_aborted",
            "Kafka transactions given up (exactly_once=True): each one's batch was handled again.",
            labels=("group",),
        )
        state_size = GaugeMetricFamily(
            f"{p}_kafka_state_size",
            "Open windows and table keys held in memory (Kafka stateful handlers).",
            labels=("group",),
        )
        windows_closed = CounterMetricFamily(
            f"{p}_kafka_windows_closed", "Windows closed and emitted (Kafka).", labels=("group",)
        )
        late = CounterMetricFamily(
            f"{p}_kafka_late_records",
            "Records dropped as late: their windows had closed (Kafka).",
            labels=("group",),
        )
        for transport in m.transports:
            stats = getattr(transport, "window_stats", None)
            if callable(stats) and getattr(transport, "stateful", False):
                of_group = [str(getattr(transport, "group_id", ""))]
                numbers = stats()
                state_size.add_metric(of_group, numbers["state_size"])
                windows_closed.add_metric(of_group, numbers["windows_closed"])
                late.add_metric(of_group, numbers["late_records"])
            # Connections as the transports report them (host.events): connection
            # transports report every open and close; the others never show up.
            connected = m.connections.get(transport.name)
            if connected is not None and transport.name not in counted:
                counted.add(transport.name)
                clients.add_metric([transport.name], connected)
            aborted = getattr(transport, "aborted_transactions", None)
            if isinstance(aborted, int) and getattr(transport, "exactly_once", False):
                transactions.add_metric([str(getattr(transport, "group_id", ""))], aborted)
            partition_lag = getattr(transport, "lag", None)
            if callable(partition_lag):
                group = str(getattr(transport, "group_id", ""))
                for (topic, partition), behind in sorted(partition_lag().items()):
                    lag.add_metric([group, topic, str(partition)], behind)
        yield clients
        yield lag
        yield transactions
        yield from (state_size, windows_closed, late)


def _le(bound: float) -> str:
    return repr(bound) if bound != int(bound) else f"{bound:.1f}"

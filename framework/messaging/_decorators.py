"""``@message_pattern``, ``@event_pattern`` and the pipeline decorators.

They only record metadata on the function or class; the router compiles it at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from framework.di.hints import capture_locals
from framework.exceptions import ConfigurationError
from framework.messaging._patterns import is_wildcard, validate_pattern

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

HANDLERS_ATTR = "__framework_handlers__"
ENHANCERS_ATTR = "__framework_enhancers__"

EnhancerKind = Literal["guards", "interceptors", "filters", "pipes"]


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """How an event handler taking a ``list`` gets its batches.

    Attributes:
        max_size: events in one batch, at most.
        max_wait: seconds the first event of a batch waits for more before the batch
            is handled anyway.
    """

    max_size: int
    max_wait: float


@dataclass(frozen=True, slots=True)
class PatternMeta:
    kind: Literal["message", "event"]
    pattern: str
    transports: frozenset[str] | None
    extras: tuple[tuple[str, Any], ...] = ()
    batch: BatchOptions | None = None


def _add_handler(fn: Any, meta: PatternMeta) -> None:
    existing = fn.__dict__.get(HANDLERS_ATTR)
    if existing is None:
        existing = []
        setattr(fn, HANDLERS_ATTR, existing)
    existing.append(meta)


def _pattern_decorator(
    kind: Literal["message", "event"],
    pattern: str,
    transports: Iterable[str] | None,
    extras: Any,
    batch: BatchOptions | None = None,
) -> Callable[[F], F]:
    validate_pattern(pattern)
    served = frozenset(transports) if transports is not None else None
    if batch is not None and "emits" in extras:
        raise ConfigurationError(
            f"@event_pattern({pattern!r}): emits= is not for batch handlers; produce with "
            "a handler per record, or from the batch handler with a KafkaClient"
        )
    if "window" in extras and "emits" not in extras:
        raise ConfigurationError(
            f"@event_pattern({pattern!r}, window=...): a window handler needs "
            "emits='topic', where its closed windows go"
        )
    if "emits" in extras:
        served = _emitting(kind, pattern, served, extras["emits"])
    meta = PatternMeta(kind, pattern, served, tuple(sorted(extras.items())), batch)

    def decorate(fn: F) -> F:
        _add_handler(fn, meta)
        capture_locals(fn)
        return fn

    return decorate


EMITS_TRANSPORTS = frozenset({"kafka"})
"""The transports that produce an ``emits=`` handler's results (a topic to write to)."""


def _emitting(
    kind: str, pattern: str, transports: frozenset[str] | None, topic: Any
) -> frozenset[str]:
    """The transports of an ``emits=`` handler: Kafka only (other transports have no
    topic to write the results to), checked here so a mistake fails at import."""
    where = f"@event_pattern({pattern!r}, emits={topic!r})"
    if kind != "event":
        raise ConfigurationError(
            f"{where}: emits= is for event handlers; a request handler's result is its reply"
        )
    if not isinstance(topic, str) or not topic or is_wildcard(topic):
        raise ConfigurationError(f"{where}: emits= takes one topic name (no wildcards)")
    if transports is None:
        return EMITS_TRANSPORTS
    if not transports <= EMITS_TRANSPORTS:
        others = ", ".join(sorted(transports - EMITS_TRANSPORTS))
        raise ConfigurationError(
            f"{where}: only the Kafka transport produces results to a topic, not {others}; "
            "drop them from transports= (or write a second handler for them without emits=)"
        )
    return transports


def message_pattern(
    pattern: str, *, transports: Iterable[str] | None = None, **extras: Any
) -> Callable[[F], F]:
    """Declare a request/reply handler for ``pattern`` on every transport.

    Args:
        pattern: the pattern (Kafka topic, WS event, ...); ``*``/``#`` wildcards allowed.
        transports: limit the handler to these transport names (``"kafka"``, ``"ws"``,
            ``"sse"``, ``"memory"``); ``None`` serves it on all of them.
        **extras: transport-specific options (for Kafka: ``max_retries``, ``dlq``...).

    The handler's first non-context parameter is the payload, validated from its type hint.
    It may return a value, an awaitable, or an async iterator (a stream of replies).
    """
    return _pattern_decorator("message", pattern, transports, extras)


def event_pattern(
    pattern: str,
    *,
    transports: Iterable[str] | None = None,
    batch: bool = False,
    max_batch: int = 100,
    max_wait: float = 0.1,
    **extras: Any,
) -> Callable[[F], F]:
    """Declare a fire-and-forget handler; several handlers may share a pattern.

    Arguments as for ``message_pattern``; the return value is ignored (but see
    ``emits=`` below). With
    ``batch=True`` the handler's payload parameter is a ``list[T]`` and it gets events in
    batches: up to ``max_batch`` events, each validated as a ``T`` on its own (one that
    fails takes the transport's error path, the others stay in the batch), handled
    ``max_wait`` seconds after the batch's first event at the latest. The memory and
    Kafka transports batch (Kafka: from one fetch of one partition); other transports
    call the handler with a batch of one.

    With the Kafka extra ``emits="topic"``, each result (each item, when the handler returns
    an async iterator; nothing for ``None``) is produced to that topic, keyed by the
    input record's key unless the result is a ``KafkaRecord`` saying otherwise. An
    ``emits=`` handler is served on Kafka only (``transports`` defaults to
    ``["kafka"]``; naming another transport raises ``ConfigurationError``).

    With ``window=TumblingWindow(...)`` (or ``HoppingWindow``, ``SessionWindow``) and
    ``aggregate="count"`` (default), ``"sum"`` or a reducer ``(aggregate, value) ->
    aggregate``, the results are folded per record key into event-time windows instead,
    and each window is produced to the ``emits=`` topic when it closes
    (docs/kafka-exactly-once.md).
    """
    options = None
    if batch:
        if max_batch < 1 or max_wait < 0:
            raise ConfigurationError(
                f"@event_pattern({pattern!r}): max_batch must be at least 1 and max_wait "
                "0 seconds or more"
            )
        options = BatchOptions(max_batch, max_wait)
    return _pattern_decorator("event", pattern, transports, extras, options)


def _enhancer(kind: EnhancerKind, items: tuple[Any, ...]) -> Callable[[T], T]:
    def decorate(target: T) -> T:
        store: dict[str, list[Any]] | None = getattr(target, "__dict__", {}).get(ENHANCERS_ATTR)
        if store is None:
            store = {}
            setattr(target, ENHANCERS_ATTR, store)
        # Outer decorators run last but read first: keep declaration order.
        store[kind] = [*items, *store.get(kind, [])]
        return target

    return decorate


def use_guards(*guards: Any) -> Callable[[T], T]:
    """Guards (classes or instances with ``can_activate(ctx) -> bool``, sync or async)
    for a controller or a handler. A ``False`` answer refuses the call (HTTP 403, or an
    RPC error ``"Forbidden resource"``)."""
    return _enhancer("guards", guards)


def use_interceptors(*interceptors: Any) -> Callable[[T], T]:
    """Interceptors (``async intercept(ctx, call_next)``) around a controller's or a
    handler's calls: code before ``await call_next()`` runs before the handler."""
    return _enhancer("interceptors", interceptors)


def use_filters(*filters: Any) -> Callable[[T], T]:
    """Exception filters (``catch(exc, ctx)``, sync or async); what ``catch`` returns
    becomes the reply. A filter's ``exception_types`` tuple limits what it catches."""
    return _enhancer("filters", filters)


def use_pipes(*pipes: Any) -> Callable[[T], T]:
    """Pipes (``transform(value, ctx)``, sync or async) applied to the validated payload."""
    return _enhancer("pipes", pipes)


def enhancers_of(target: Any, kind: EnhancerKind) -> list[Any]:
    store = getattr(target, "__dict__", {}).get(ENHANCERS_ATTR) or {}
    return list(store.get(kind, []))


def handlers_of(fn: Any) -> list[PatternMeta]:
    return list(getattr(fn, "__dict__", {}).get(HANDLERS_ATTR) or [])

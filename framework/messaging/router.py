"""The compiled dispatch table.

At start-up every ``@message_pattern``/``@event_pattern`` method becomes a
``MessageHandler`` whose ``call(raw, ctx)`` is specialised: a singleton handler with no
guards, interceptors, filters or pipes is the bound method applied to the validated
payload, nothing more. Transports reach handlers through a ``Dispatcher``
(``messaging/dispatch.py``), which looks them up with ``Router.matching`` and caches.

Handler middlewares (``HandlerMiddleware``: observability, the inspector, your own) are
compiled in here too, once, so ``handler.call`` is final when ``build_router`` returns;
an app without middlewares compiles no wrapper at all.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from framework.di.container import REQUEST, Container, ProviderRecord
from framework.di.metadata import Scope
from framework.exceptions import ConfigurationError, ForbiddenException
from framework.messaging._binding import (
    HandlerSignature,
    Validator,
    analyse,
    as_is,
    either,
    make_validator,
    validators,
)
from framework.messaging._decorators import BatchOptions, PatternMeta, handlers_of
from framework.messaging._feeds import stream_of_one
from framework.messaging._patterns import is_wildcard, matches, specificity
from framework.messaging._pipeline import GlobalEnhancers, Pipeline, build_pipeline
from framework.messaging.context import ExecutionContext

Invoke = Callable[[Any, Any], Awaitable[Any]]


@dataclass(eq=False, slots=True)
class MessageHandler:
    """One compiled handler.

    Attributes:
        kind: "message" (request/reply) or "event".
        pattern: the declared pattern (may be a wildcard).
        call: ``await call(raw, ctx)``: ``raw`` is JSON bytes or a decoded object; ``ctx``
            is a ``MessageContext`` when ``needs_context`` is true, else may be ``None``.
            A message handler's result may be an async iterator (a stream).
        needs_context: build a context for this handler (it takes one, or has a pipeline).
        batch: a batch handler's options (``@event_pattern(batch=True)``), else ``None``.
            Its ``call`` handles one message as a batch of one; transports that batch
            validate each message with ``validate_item`` and pass the list of values to
            ``call_batch`` (``ctx``: the context of the batch's first message).
        call_stream: set for an inbound-stream handler (its payload is an
            ``AsyncIterator[T]`` or ``Observable[T]``): ``call_stream(stream, ctx)`` calls
            it with the stream (``ctx``: its first message's context); transports that
            stream feed it items validated by ``validate_item`` (``messaging/_feeds.py``).
            Its ``call`` handles one message as a stream of one.
    """

    kind: Literal["message", "event"]
    pattern: str
    transports: frozenset[str] | None
    name: str
    func: Callable[..., Any]
    controller: type
    signature: HandlerSignature
    extras: dict[str, Any]
    call: Invoke
    needs_context: bool
    batch: BatchOptions | None = None
    validate_item: Validator | None = None
    call_batch: Invoke | None = None
    call_stream: Invoke | None = None

    def serves(self, transport: str) -> bool:
        return self.transports is None or transport in self.transports


class HandlerMiddleware(Protocol):
    """Wraps the call of every compiled handler, once, when the router is built.

    Attributes:
        needs_context: the wrapped call reads ``ctx`` (so transports must build one for
            every message of a handler this middleware wrapped).
    """

    needs_context: bool

    def wrap(self, handler: MessageHandler, call: Invoke) -> Invoke:
        """The call to use instead of ``call`` (the handler's call so far, inner
        middlewares applied); return ``call`` itself to leave ``handler`` as it is."""
        ...


def _direct(
    bound: Callable[..., Any],
    order: tuple[str, ...],
    validate: Validator | None,
    split: tuple[Validator, Validator] | None = None,
) -> Invoke:
    """Call ``bound`` with its arguments in declaration order; returns what it returns.

    ``split``: ``validate``'s two halves (``validators``), when it has them: the choice
    between them is made inline, a Python call fewer per message (about 4% of the
    instructions a small Kafka record's handling takes)."""
    if split is not None:
        vj, vp = split
        if order == ("payload",):
            return lambda raw, ctx: bound(vj(raw) if raw.__class__ is bytes else vp(raw))
        if order == ("payload", "context"):
            return lambda raw, ctx: bound(vj(raw) if raw.__class__ is bytes else vp(raw), ctx)
        if order == ("context", "payload"):
            return lambda raw, ctx: bound(ctx, vj(raw) if raw.__class__ is bytes else vp(raw))
    if order == ("payload",):
        assert validate is not None
        return lambda raw, ctx: bound(validate(raw))
    if order == ("payload", "context"):
        assert validate is not None
        return lambda raw, ctx: bound(validate(raw), ctx)
    if order == ("context", "payload"):
        assert validate is not None
        return lambda raw, ctx: bound(ctx, validate(raw))
    if order == ("context",):
        return lambda raw, ctx: bound(ctx)
    return lambda raw, ctx: bound()


def _awaitable(fn: Callable[..., Any], invoke: Invoke) -> Invoke:
    """Coroutine functions already return awaitables; wrap the rest (sync, async gen)."""
    if inspect.iscoroutinefunction(fn):
        return invoke

    async def wrapped(raw: Any, ctx: Any) -> Any:
        return invoke(raw, ctx)

    return wrapped


def _with_pipes(
    bound: Callable[..., Any],
    sig: HandlerSignature,
    validate: Validator | None,
    pipeline: Pipeline,
    kind: Literal["message", "event"],
    fn: Callable[..., Any],
    controller: type,
    pattern: str,
) -> Invoke:
    async def invoke(raw: Any, ctx: Any) -> Any:
        args = []
        for part in sig.order:
            if part == "payload":
                assert validate is not None
                ectx = ExecutionContext(kind, ctx.transport, pattern, fn, controller, ctx, raw)
                args.append(await pipeline.transform(validate(raw), ectx))
            else:
                args.append(ctx)
        result = bound(*args)
        # An Observable is awaitable too (its last item): only a coroutine is awaited.
        return await result if inspect.iscoroutine(result) else result

    return invoke


def _piped(
    pipeline: Pipeline,
    invoke: Invoke,
    kind: Literal["message", "event"],
    pattern: str,
    fn: Callable[..., Any],
    controller: type,
) -> Invoke:
    """``invoke`` behind its guards, interceptors and filters."""
    if not pipeline.is_simple:
        run = pipeline.run

        def piped(raw: Any, ctx: Any) -> Awaitable[Any]:
            ectx = ExecutionContext(kind, ctx.transport, pattern, fn, controller, ctx, raw)
            return run(ectx, lambda: invoke(raw, ctx))

        return piped
    checks, intercept = pipeline.simple_parts()

    def simple(raw: Any, ctx: Any) -> Awaitable[Any]:
        # What Pipeline.run does, minus its coroutine: a refusal raises here, as a
        # validation error in a plain handler's call does.
        ectx = ExecutionContext(kind, ctx.transport, pattern, fn, controller, ctx, raw)
        for check in checks:
            if not check(ectx):
                raise ForbiddenException()
        if intercept is None:
            return invoke(raw, ctx)
        result: Awaitable[Any] = intercept(ectx, lambda: invoke(raw, ctx))
        return result

    return simple


async def _compile(
    container: Container,
    rec: ProviderRecord,
    controller: type,
    attr: str,
    fn: Callable[..., Any],
    meta: PatternMeta,
    pipeline: Pipeline,
    middlewares: Sequence[HandlerMiddleware],
) -> MessageHandler:
    owner = f"{controller.__qualname__}.{attr}"
    sig = analyse(fn, owner, controller, rec.module.cls)
    validate_item: Validator | None = None
    split: tuple[Validator, Validator] | None = None
    if sig.stream_input is not None:
        _check_stream_input(sig, meta, owner)
        validate_item = make_validator(sig.item_type)
        validate: Validator | None = as_is  # call (call_stream, below) takes the stream
    elif meta.batch is not None:
        validate_item = make_validator(_batch_item_type(sig, owner))
        validate = _one_item_batch(validate_item)
    elif "payload" in sig.order:
        split = validators(sig.payload_type)
        validate = either(*split)
    else:
        validate = None
    request_scoped = rec.scope is not Scope.SINGLETON

    def compiled(
        validate: Validator | None, split: tuple[Validator, Validator] | None = None
    ) -> Invoke:
        def make_invoke(instance: Any) -> Invoke:
            bound = getattr(instance, attr)
            if pipeline.pipes:
                return _with_pipes(
                    bound, sig, validate, pipeline, meta.kind, fn, controller, meta.pattern
                )
            return _awaitable(fn, _direct(bound, sig.order, validate, split))

        invoke: Invoke
        if request_scoped:

            async def scoped(raw: Any, ctx: Any) -> Any:
                instance = await container.resolve(rec, {REQUEST: ctx})
                return await make_invoke(instance)(raw, ctx)

            invoke = scoped
        else:
            invoke = make_invoke(rec.instance)
        if not pipeline:
            return invoke
        return _piped(pipeline, invoke, meta.kind, meta.pattern, fn, controller)

    call = compiled(validate, split)
    # A batch arrives validated, item by item: the list goes to the handler as it is.
    call_batch = compiled(as_is) if meta.batch is not None else None
    handler = MessageHandler(
        kind=meta.kind,
        pattern=meta.pattern,
        transports=meta.transports,
        name=owner,
        func=fn,
        controller=controller,
        signature=sig,
        extras=dict(meta.extras),
        call=call,
        needs_context=bool(pipeline) or request_scoped or "context" in sig.order,
        batch=meta.batch,
        validate_item=validate_item,
        call_batch=call_batch,
    )
    for middleware in reversed(middlewares):  # the first one listed runs outermost
        wrapped = middleware.wrap(handler, handler.call)
        if wrapped is not handler.call:
            handler.call = wrapped
            handler.needs_context = handler.needs_context or middleware.needs_context
        if handler.call_batch is not None:
            handler.call_batch = middleware.wrap(handler, handler.call_batch)
    if sig.stream_input is not None:
        # Middlewares wrapped the call with the stream; one message is a stream of one.
        handler.call_stream = handler.call
        handler.call = stream_of_one(handler)
    return handler


def _check_stream_input(sig: HandlerSignature, meta: PatternMeta, owner: str) -> None:
    if meta.kind != "event" or meta.batch is not None or "emits" in dict(meta.extras):
        raise ConfigurationError(
            f"{owner}: an inbound stream (a payload typed {sig.payload_type}) is for plain "
            "@event_pattern handlers (not @message_pattern, batch=True or emits=): a "
            "request has one payload; batch or emit from the stream instead"
        )


def _one_item_batch(validate_item: Validator) -> Validator:
    return lambda raw: [validate_item(raw)]


def _batch_item_type(sig: HandlerSignature, owner: str) -> Any:
    """``T`` of a batch handler's ``list[T]`` payload."""
    tp = sig.payload_type
    args = typing.get_args(tp)
    if sig.order != ("payload",) or typing.get_origin(tp) is not list or len(args) != 1:
        raise ConfigurationError(
            f"{owner}: a batch handler (@event_pattern(batch=True)) takes one parameter, "
            "its batch, typed list[T] (T: what each event validates as)"
        )
    return args[0]


def handler_methods(cls: type) -> Iterable[tuple[str, Callable[..., Any]]]:
    """``(name, function)`` for every method of ``cls`` (own and inherited)."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if name not in seen and inspect.isfunction(value):
                seen.add(name)
                yield name, value


async def build_router(
    container: Container,
    global_enhancers: GlobalEnhancers,
    middlewares: Sequence[HandlerMiddleware] = (),
) -> Router:
    """Compile every controller's message handlers into a ``Router``.

    Args:
        container: the instantiated graph.
        global_enhancers: the app's global guards, interceptors, filters and pipes.
        middlewares: wrap every handler's call, the first listed outermost.
    """
    handlers: list[MessageHandler] = []
    for rec in container.controllers():
        cls = rec.provider.use_class
        assert cls is not None
        for attr, fn in handler_methods(cls):
            metas = handlers_of(fn)
            if not metas:
                continue
            pipeline = await build_pipeline(container, rec.module, cls, fn, global_enhancers)
            for meta in metas:
                handler = await _compile(container, rec, cls, attr, fn, meta, pipeline, middlewares)
                handlers.append(handler)
    return Router(handlers)


class Router:
    """Handlers by pattern, with wildcard precedence and a per-transport lookup cache."""

    def __init__(self, handlers: Sequence[MessageHandler]) -> None:
        self.handlers = list(handlers)
        self._check_duplicates()
        # Exact patterns before wildcards, wildcards by specificity; stable for ties.
        self._ordered = sorted(
            self.handlers, key=lambda h: (is_wildcard(h.pattern), specificity(h.pattern))
        )

    def _check_duplicates(self) -> None:
        seen: dict[str, MessageHandler] = {}
        for h in self.handlers:
            if h.kind != "message":
                continue
            other = seen.get(h.pattern)
            overlap = other is not None and (
                other.transports is None
                or h.transports is None
                or bool(other.transports & h.transports)
            )
            if other is not None and overlap:
                raise ConfigurationError(
                    f"Two request/reply handlers for pattern {h.pattern!r}: {other.name} and "
                    f"{h.name}; a request has one reply, so keep one (or limit each to "
                    "different transports)"
                )
            seen[h.pattern] = h

    def matching(self, pattern: str, transport: str) -> list[MessageHandler]:
        """Every handler serving ``pattern`` on ``transport``, best match first (exact
        patterns, then wildcards by specificity). Not cached: dispatchers cache."""
        return [h for h in self._ordered if h.serves(transport) and matches(h.pattern, pattern)]

    def patterns(self, transport: str) -> set[str]:
        """Every pattern served on ``transport`` (wildcards included)."""
        return {h.pattern for h in self.handlers if h.serves(transport)}

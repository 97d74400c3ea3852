"""Guards -> interceptors -> pipes -> handler -> interceptors -> filters.

One ``Pipeline`` per handler, built at start-up from global, controller and handler
enhancers. A handler with an empty pipeline never runs any of this code: the router calls
it directly.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from framework.exceptions import ForbiddenException
from framework.messaging._decorators import EnhancerKind, enhancers_of
from framework.messaging.context import ExecutionContext

if TYPE_CHECKING:
    from framework.di.container import Container, ModuleNode

Inner = Callable[[], Awaitable[Any]]


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Pipeline:
    """The enhancers of one handler, with sync/async resolved once at start-up."""

    __slots__ = ("_checks", "_intercepts", "filters", "guards", "interceptors", "pipes")

    def __init__(
        self,
        guards: Sequence[Any] = (),
        interceptors: Sequence[Any] = (),
        filters: Sequence[Any] = (),
        pipes: Sequence[Any] = (),
    ) -> None:
        self.guards = tuple(guards)
        self.interceptors = tuple(interceptors)
        self.filters = tuple(filters)
        self.pipes = tuple(pipes)
        self._checks = tuple(
            (g.can_activate, inspect.iscoroutinefunction(g.can_activate)) for g in self.guards
        )
        self._intercepts = tuple(i.intercept for i in self.interceptors)

    def __bool__(self) -> bool:
        return bool(self.guards or self.interceptors or self.filters or self.pipes)

    @property
    def is_simple(self) -> bool:
        """Sync guards, at most one interceptor, no filters: the router can then run the
        pipeline without a coroutine of its own (the common shape, and the hot one)."""
        sync_guards = not any(is_async for _, is_async in self._checks)
        return sync_guards and len(self._intercepts) <= 1 and not self.filters

    def simple_parts(self) -> tuple[tuple[Callable[[ExecutionContext], Any], ...], Any]:
        """``(guard checks, the interceptor's intercept or None)`` of a simple pipeline."""
        return tuple(c for c, _ in self._checks), (self._intercepts or (None,))[0]

    async def transform(self, value: Any, ectx: ExecutionContext) -> Any:
        for pipe in self.pipes:
            value = await _maybe_await(pipe.transform(value, ectx))
        return value

    async def run(self, ectx: ExecutionContext, inner: Inner) -> Any:
        """Guards, then interceptors around ``inner``; filters catch what escapes."""
        try:
            for check, is_async in self._checks:
                allowed = await check(ectx) if is_async else check(ectx)
                if not allowed:
                    raise ForbiddenException()
            intercepts = self._intercepts
            if not intercepts:
                return await inner()
            if len(intercepts) == 1:  # the common case, without the chain's bookkeeping
                return await intercepts[0](ectx, inner)
            return await self._intercept(0, ectx, inner)
        except Exception as exc:
            for flt in self.filters:
                types = getattr(flt, "exception_types", None) or (Exception,)
                if isinstance(exc, tuple(types)):
                    return await _maybe_await(flt.catch(exc, ectx))
            raise

    def _intercept(self, index: int, ectx: ExecutionContext, inner: Inner) -> Awaitable[Any]:
        last = index == len(self.interceptors) - 1
        # The innermost interceptor gets ``inner`` itself: no extra closure per message.
        call_next = inner if last else lambda: self._intercept(index + 1, ectx, inner)
        result: Awaitable[Any] = self._intercepts[index](ectx, call_next)
        return result


GlobalEnhancers = dict[str, list[Any]]


async def build_pipeline(
    container: Container,
    node: ModuleNode,
    controller: type,
    fn: Callable[..., Any],
    global_enhancers: GlobalEnhancers,
) -> Pipeline:
    """The pipeline for one handler: global, then controller, then handler enhancers.

    Filters run in the opposite order (the handler's own first), as in NestJS. Classes
    are instantiated once with the controller module's providers; instances are used as
    they are.
    """

    async def instances(kind: EnhancerKind) -> list[Any]:
        items = [*global_enhancers.get(kind, []), *enhancers_of(controller, kind)]
        items += enhancers_of(fn, kind)
        if kind == "filters":
            items.reverse()
        items = [container.enhancer_overrides.replace(kind, i) for i in items]
        return [await container.create_in(node, i) if isinstance(i, type) else i for i in items]

    return Pipeline(
        guards=tuple(await instances("guards")),
        interceptors=tuple(await instances("interceptors")),
        filters=tuple(await instances("filters")),
        pipes=tuple(await instances("pipes")),
    )

"""The bridge to the ``injector`` library, both ways.

In: an ``injector.Module`` (class or instance) listed in a ``@module``'s imports becomes a
module of ours whose providers are its bindings and which exports all of them. Its
``configure(binder)`` and ``@provider`` methods run once, into a binder of their own,
and each binding is read back as a ``Provider``: the same graph checks, overrides,
async start-up and visibility rules then apply to it as to any provider.

Out: ``Container.injector`` is an ``injector.Injector`` whose bindings are our records,
so ``injector.get(T)`` returns the singleton the app uses, and classes written for
``injector`` (``@inject``) that nobody listed can still be built from the app's graph.

``injector`` has no public way to list a binder's bindings or a provider's target, so
this module reads ``Binder._bindings`` and the providers' ``_cls``/``_instance``/
``_callable``, all stable since injector 0.18; tests/di/test_injector.py pins them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import injector

from framework.di.hints import type_hints
from framework.di.metadata import ModuleMeta, Provider, Scope, token_name, value_provider
from framework.exceptions import ConfigurationError

if TYPE_CHECKING:
    from framework.di.container import Container, ProviderRecord

# ``NoInject[T]`` marks a parameter injector must leave alone.
NOINJECT_MARK: Any = typing.get_args(injector.NoInject[int])[1]


def is_injector_module(entry: Any) -> bool:
    return isinstance(entry, injector.Module) or (
        isinstance(entry, type) and issubclass(entry, injector.Module)
    )


def injector_module_meta(entry: Any, app_injector: injector.Injector) -> tuple[type, ModuleMeta]:
    """The class and module metadata for an ``injector.Module`` class or instance."""
    cls = entry if isinstance(entry, type) else type(entry)
    # The binder's injector is the app's, so a module that keeps ``binder.injector``
    # (injector.Module does, as ``__injector__``) holds the one that sees the app.
    binder = injector.Binder(app_injector, auto_bind=False)
    binder.install(entry)
    providers = [
        _as_provider(cls.__name__, interface, binding)
        for interface, binding in binder._bindings.items()
    ]
    tokens = [p.token for p in providers]
    return cls, ModuleMeta([], [], providers, tokens, False)


def _scope(owner: str, interface: Any, scope: Any) -> Scope:
    if isinstance(scope, injector.ScopeDecorator):
        scope = scope.scope
    if scope is injector.SingletonScope:
        return Scope.SINGLETON
    if scope is injector.NoScope:
        return Scope.TRANSIENT  # injector builds a new one on every get, so do we
    raise ConfigurationError(
        f"{owner} binds {token_name(interface)} in {getattr(scope, '__name__', scope)!r}; "
        "only injector.singleton and the default (no scope) map to this framework's "
        "scopes: use Scope.REQUEST on a framework provider for per-request instances"
    )


def _as_provider(owner: str, interface: Any, binding: injector.Binding) -> Provider:
    source = binding.provider
    scope = _scope(owner, interface, binding.scope)
    if isinstance(source, injector.InstanceProvider):
        return value_provider(interface, source._instance)
    if isinstance(source, injector.ClassProvider):
        return Provider(interface, use_class=source._cls, scope=scope)
    if isinstance(source, injector.CallableProvider):
        fn = source._callable
        names, tokens = _callable_deps(owner, fn)
        return Provider(interface, use_factory=_by_name(fn, names), inject=tokens, scope=scope)
    raise ConfigurationError(
        f"{owner} binds {token_name(interface)} to {type(source).__name__}, which this "
        "framework cannot read (multibind and custom injector providers are not supported); "
        "bind a class, an instance or a callable, or list a framework Provider instead"
    )


def _callable_deps(owner: str, fn: Callable[..., Any]) -> tuple[list[str], list[Any]]:
    """A provider function's injected parameters, as injector would inject them."""
    hints = type_hints(fn, owner, owner, include_extras=True)
    names: list[str] = []
    tokens: list[Any] = []
    for name, param in inspect.signature(fn).parameters.items():
        hint = hints.get(name)
        if hint is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        metadata = getattr(hint, "__metadata__", ())
        if NOINJECT_MARK in metadata:
            continue
        names.append(name)
        tokens.append(hint.__origin__ if metadata else hint)
    return names, tokens


def _by_name(fn: Callable[..., Any], names: list[str]) -> Callable[..., Any]:
    def factory(*args: Any) -> Any:
        return fn(**dict(zip(names, args, strict=True)))

    return factory


class RecordProvider(injector.Provider[Any]):
    """An injector provider answering from the framework's graph."""

    def __init__(self, container: Container, rec: ProviderRecord) -> None:
        self._container = container
        self._rec = rec

    def get(self, _: injector.Injector) -> Any:
        rec = self._rec
        if rec.scope is Scope.REQUEST:
            raise ConfigurationError(
                f"{rec.name} is request-scoped: injector cannot build it outside a request; "
                "inject it into a handler or a request-scoped provider instead"
            )
        # resolve() suspends only when an async factory really waits; a graph of classes
        # and sync (or non-waiting async) factories completes on the first step.
        step = self._container.resolve(rec, None)
        try:
            step.send(None)
        except StopIteration as done:
            return done.value
        step.close()
        raise ConfigurationError(
            f"{rec.name} has an async factory that waits, which injector's synchronous get() "
            "cannot run: start the app first (singletons are then ready) or inject it"
        )

"""The module graph and the resolver.

``Container.build(root)`` scans modules once: it computes what each module can see,
checks every dependency (missing providers and cycles fail here, never per message),
and instantiates singletons in dependency order, awaiting async factories.

Why not resolve with ``injector`` directly: it has no async factories, no per-module
visibility and takes a global lock on ``get``. We resolve the graph ourselves; an
``injector.Module`` may still be imported into a module, and ``Container.injector`` is an
``injector.Injector`` answering from this graph (see ``_injector.py``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import injector

from framework.di._injector import (
    NOINJECT_MARK,
    RecordProvider,
    injector_module_meta,
    is_injector_module,
)
from framework.di.hints import type_hints
from framework.di.metadata import (
    CONTROLLER_ATTR,
    INJECTABLE_ATTR,
    DynamicModule,
    ForwardRef,
    Inject,
    InjectionToken,
    ModuleMeta,
    Provider,
    Scope,
    Token,
    module_meta,
    token_name,
    value_provider,
)
from framework.exceptions import ConfigurationError, DependencyCycleError

GATEWAY_ATTR = "__framework_gateway__"  # set by framework.messaging._gateway

REQUEST = InjectionToken("REQUEST")
"""Injects the current request: the ``MessageContext`` or the starlette ``Request``."""

_MISSING = object()


@dataclass(slots=True)
class Dependency:
    name: str
    token: Token
    default: Any = _MISSING


@dataclass(eq=False, slots=True)
class ProviderRecord:
    token: Token
    module: ModuleNode
    provider: Provider
    deps: list[Dependency]
    declared_scope: Scope
    scope: Scope = Scope.SINGLETON
    instance: Any = _MISSING

    @property
    def name(self) -> str:
        return token_name(self.token)


@dataclass(eq=False, slots=True)
class ModuleNode:
    cls: type
    meta: ModuleMeta
    imports: list[ModuleNode] = field(default_factory=list)
    providers: dict[Any, ProviderRecord] = field(default_factory=dict)
    controllers: list[ProviderRecord] = field(default_factory=list)
    visible: dict[Any, ProviderRecord] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cls.__name__


def _deps_of_callable(
    fn: Callable[..., Any], owner: str, scopes: tuple[Any, ...]
) -> list[Dependency]:
    hints = type_hints(fn, owner, owner, scopes, include_extras=True)
    deps: list[Dependency] = []
    for name, param in inspect.signature(fn).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(name, _MISSING)
        if hint is _MISSING:
            raise ConfigurationError(
                f"{owner} parameter {name!r} has no type hint; annotate it with the class "
                "to inject or Annotated[T, Inject(TOKEN)]"
            )
        token: Any = hint
        if typing.get_origin(hint) is typing.Annotated:
            if NOINJECT_MARK in hint.__metadata__:
                continue  # injector's NoInject[T]: the caller passes it, or its default
            marks = [m for m in hint.__metadata__ if isinstance(m, Inject)]
            token = marks[0].token if marks else typing.get_args(hint)[0]
        default = param.default if param.default is not param.empty else _MISSING
        deps.append(Dependency(name, token, default))
    return deps


def _class_deps(cls: type, module: type) -> list[Dependency]:
    """``cls.__init__``'s dependencies; its hints may use the names captured where the
    class that defines ``__init__``, ``cls`` or the listing ``module`` were declared."""
    definer = next((k for k in cls.__mro__ if "__init__" in k.__dict__), object)
    init = definer.__dict__["__init__"]
    if init is object.__init__:
        return []
    return _deps_of_callable(init, cls.__name__, (definer, cls, module))


def _as_provider(entry: Any) -> Provider:
    if isinstance(entry, Provider):
        return entry
    if isinstance(entry, type):
        return Provider(entry, use_class=entry)
    raise ConfigurationError(
        f"{entry!r} is not a provider: list a class or a Provider(token, use_...=...)"
    )


def _record(module: ModuleNode, entry: Any) -> ProviderRecord:
    p = _as_provider(entry)
    if p.use_class is not None:
        deps = _class_deps(p.use_class, module.cls)
        default_scope = getattr(p.use_class, INJECTABLE_ATTR, Scope.SINGLETON)
        ctrl = getattr(p.use_class, CONTROLLER_ATTR, None)
        if ctrl is not None:
            default_scope = ctrl.scope
    elif p.use_factory is not None:
        deps = [Dependency(f"arg{i}", t) for i, t in enumerate(p.inject)]
        default_scope = Scope.SINGLETON
    elif p.use_existing is not None:
        deps = [Dependency("existing", p.use_existing)]
        default_scope = Scope.SINGLETON
    else:
        deps, default_scope = [], Scope.SINGLETON
    scope = p.scope or default_scope
    return ProviderRecord(p.token, module, p, deps, scope, scope)


class EnhancerOverrides:
    """Guards, interceptors, filters and pipes replaced by a testing module, wherever
    they are used (global, controller or handler); keyed by identity, since an
    enhancer instance need not be hashable."""

    def __init__(self, pairs: Sequence[tuple[str, Any, Any]] = ()) -> None:
        self._by_id = {(kind, id(old)): (old, new) for kind, old, new in pairs}
        self._used: set[tuple[str, int]] = set()

    def replace(self, kind: str, enhancer: Any) -> Any:
        found = self._by_id.get((kind, id(enhancer)))
        if found is None:
            return enhancer
        self._used.add((kind, id(enhancer)))
        return found[1]

    def check_all_used(self) -> None:
        """An override that replaced nothing is a test that checks nothing: refuse it."""
        for key, (old, _) in self._by_id.items():
            if key not in self._used:
                kind = key[0].rstrip("s")
                name = getattr(old, "__name__", None) or type(old).__name__
                raise ConfigurationError(
                    f"override_{kind}({name}) replaced nothing: no handler or route uses "
                    f"that {kind} (check it is the same class or instance the app lists)"
                )


class Container:
    """The scanned module graph with every provider resolved or resolvable."""

    def __init__(
        self,
        root: Any,
        *,
        extra_global_providers: list[Any] | None = None,
        overrides: Sequence[Provider] = (),
        enhancer_overrides: EnhancerOverrides | None = None,
    ) -> None:
        self._overrides = {p.token: p for p in overrides}
        self.enhancer_overrides = enhancer_overrides or EnhancerOverrides()
        self.modules: list[ModuleNode] = []
        self._by_key: dict[Any, ModuleNode] = {}
        self._created: list[ProviderRecord] = []
        self.injector = injector.Injector()
        core = [value_provider(injector.Injector, self.injector), *(extra_global_providers or [])]
        self._core = self._core_module(core)
        self.root = self._scan(root, [], False)
        self._compute_visibility()
        self._check_dependencies()
        self._bind_injector()

    # -- scanning -------------------------------------------------------------------

    def _core_module(self, providers: list[Any]) -> ModuleNode:
        class CoreModule:
            pass

        meta = ModuleMeta([], [], providers, [_as_provider(p).token for p in providers], True)
        node = ModuleNode(CoreModule, meta)
        for entry in providers:
            rec = _record(node, entry)
            node.providers[rec.token] = rec
        self.modules.append(node)
        return node

    def _scan(self, entry: Any, path: list[tuple[ModuleNode, bool]], forward: bool) -> ModuleNode:
        """Scan a module; ``path`` holds (module, reached via forward_ref) pairs."""
        if isinstance(entry, ForwardRef):
            entry, forward = entry.factory(), True
        key: Any = entry
        if isinstance(entry, DynamicModule):
            base = module_meta(entry.module)
            if base is None:
                raise ConfigurationError(
                    f"DynamicModule(module={entry.module!r}): that class has no @module"
                )
            meta = ModuleMeta(
                base.imports + list(entry.imports),
                base.controllers + list(entry.controllers),
                base.providers + list(entry.providers),
                base.exports + list(entry.exports),
                base.global_ or entry.global_,
            )
            cls = entry.module
        elif is_injector_module(entry):
            cls, meta = injector_module_meta(entry, self.injector)
        else:
            found = module_meta(entry)
            if found is None:
                where = f" (imported by {path[-1][0].name})" if path else ""
                raise ConfigurationError(
                    f"{entry!r}{where} is not a module: decorate it with @module"
                )
            meta, cls = found, entry
        if key in self._by_key:
            node = self._by_key[key]
            nodes = [n for n, _ in path]
            if node in nodes:
                start = nodes.index(node)
                # The cycle is allowed when one of its import edges is a forward_ref.
                if forward or any(fwd for _, fwd in path[start + 1 :]):
                    return node
                cycle = " -> ".join(n.name for n in [*nodes[start:], node])
                raise DependencyCycleError(
                    f"Module import cycle: {cycle}; break it with forward_ref(lambda: "
                    f"{node.name}) in one of the imports"
                )
            return node
        node = ModuleNode(cls, meta)
        self._by_key[key] = node
        self.modules.append(node)
        for entry_p in meta.providers:
            token = _as_provider(entry_p).token
            rec = _record(node, self._overrides.get(token, entry_p))
            node.providers[rec.token] = rec
        for ctrl in meta.controllers:
            node.controllers.append(_record(node, ctrl))
        for imp in meta.imports:
            node.imports.append(self._scan(imp, [*path, (node, forward)], False))
        return node

    def _exported(self, node: ModuleNode, seen: set[int]) -> dict[Any, ProviderRecord]:
        if id(node) in seen:
            return {}
        seen.add(id(node))
        out: dict[Any, ProviderRecord] = {}
        for exp in node.meta.exports:
            target = exp.module if isinstance(exp, DynamicModule) else exp
            imported = [m for m in node.imports if m.cls is target]
            if imported:
                out.update(self._exported(imported[0], seen))
                continue
            token = exp.token if isinstance(exp, Provider) else exp
            rec = node.providers.get(token) or self._from_imports(node, token)
            if rec is None:
                raise ConfigurationError(
                    f"{node.name} exports {token_name(token)}, which it neither provides nor "
                    "imports; add it to its providers or import the module that exports it"
                )
            out[token] = rec
        return out

    def _from_imports(self, node: ModuleNode, token: Any) -> ProviderRecord | None:
        for imp in node.imports:
            rec = self._exported(imp, set()).get(token)
            if rec is not None:
                return rec
        return None

    def _compute_visibility(self) -> None:
        global_exports: dict[Any, ProviderRecord] = {}
        for node in self.modules:
            if node.meta.global_:
                global_exports.update(self._exported(node, set()))
        for node in self.modules:
            visible = dict(global_exports)
            for imp in node.imports:
                visible.update(self._exported(imp, set()))
            visible.update(node.providers)
            node.visible = visible

    # -- checking -------------------------------------------------------------------

    def _lookup(self, rec: ProviderRecord, dep: Dependency) -> ProviderRecord | None:
        found = rec.module.visible.get(dep.token)
        if found is None and dep.default is _MISSING:
            owners = [m.name for m in self.modules if dep.token in m.providers]
            hint = (
                f"{owners[0]} provides it: export it from {owners[0]} and import "
                f"{owners[0]} into {rec.module.name}"
                if owners
                else f"add a provider for it to {rec.module.name}'s providers "
                "(or to a module that exports it)"
            )
            raise ConfigurationError(
                f"{rec.name} (in {rec.module.name}) needs {token_name(dep.token)} for "
                f"parameter {dep.name!r}, but {rec.module.name} cannot see it; {hint}"
            )
        return found

    def _check_dependencies(self) -> None:
        done: set[int] = set()

        def visit(rec: ProviderRecord, path: list[ProviderRecord]) -> Scope:
            if id(rec) in done:
                return rec.scope
            if rec in path:
                cycle = " -> ".join(r.name for r in [*path[path.index(rec) :], rec])
                raise DependencyCycleError(f"Provider dependency cycle: {cycle}")
            scope = rec.declared_scope
            for dep in rec.deps:
                if dep.token is REQUEST:
                    scope = Scope.REQUEST  # the current request exists only in a request
                    continue
                target = self._lookup(rec, dep)
                if target is not None and visit(target, [*path, rec]) is Scope.REQUEST:
                    scope = Scope.REQUEST  # request scope bubbles up to consumers
            rec.scope = scope
            done.add(id(rec))
            return scope

        for rec in self.all_records():
            visit(rec, [])

    def _bind_injector(self) -> None:
        """Answer ``self.injector.get(token)`` from this graph, as ``find`` does."""
        chosen: dict[Any, ProviderRecord] = {}
        for node in self.modules:
            for rec in [*node.providers.values(), *node.controllers]:
                chosen.setdefault(rec.token, rec)
        chosen.update(self.root.visible)
        binder = self.injector.binder
        for token, rec in chosen.items():
            if token is not injector.Injector:
                binder.bind(token, to=RecordProvider(self, rec))

    def all_records(self) -> Iterator[ProviderRecord]:
        for node in self.modules:
            yield from node.providers.values()
            yield from node.controllers

    # -- instantiation --------------------------------------------------------------

    async def instantiate(self) -> None:
        """Create every singleton provider and controller, dependencies first."""
        for rec in self.all_records():
            if rec.scope is Scope.SINGLETON:
                await self.resolve(rec, None)

    async def resolve(self, rec: ProviderRecord, request: dict[Any, Any] | None) -> Any:
        """The instance for ``rec``; ``request`` caches request-scoped instances."""
        if rec.instance is not _MISSING:
            return rec.instance
        if rec.scope is Scope.REQUEST:
            if request is None:
                raise ConfigurationError(
                    f"{rec.name} is request-scoped and can only be resolved inside a request "
                    "(an HTTP request or an inbound message)"
                )
            cached = request.get(rec.token, _MISSING)
            if cached is not _MISSING:
                return cached
        kwargs: dict[str, Any] = {}
        args: list[Any] = []
        p = rec.provider
        for dep in rec.deps:
            if request is not None and dep.token is REQUEST:
                value = request[REQUEST]
            else:
                target = self._lookup(rec, dep)
                value = dep.default if target is None else await self.resolve(target, request)
            if p.use_factory is not None:
                args.append(value)
            else:
                kwargs[dep.name] = value
        if p.use_class is not None:
            value = p.use_class(**kwargs)
        elif p.use_factory is not None:
            value = p.use_factory(*args)
            if inspect.isawaitable(value):
                value = await value
        elif p.use_existing is not None:
            value = kwargs["existing"]
        else:
            value = p.use_value
        if rec.scope is Scope.SINGLETON:
            rec.instance = value
            self._created.append(rec)
        elif rec.scope is Scope.REQUEST and request is not None:
            request[rec.token] = value
        return value

    def instances_in_order(self) -> list[Any]:
        """Singletons in creation (dependency) order, each once."""
        seen: set[int] = set()
        out: list[Any] = []
        for rec in self._created:
            if id(rec.instance) not in seen and not isinstance(rec.instance, (int, str, float)):
                seen.add(id(rec.instance))
                out.append(rec.instance)
        return out

    async def create_in(self, node: ModuleNode, cls: type) -> Any:
        """An instance of ``cls`` built with ``node``'s providers (guards, filters...).

        A provider already registered for ``cls`` is reused; otherwise one instance per
        module is made and kept.
        """
        rec = node.visible.get(cls)
        if rec is None:
            rec = _record(node, cls)
            for dep in rec.deps:
                if dep.token is not REQUEST:
                    self._lookup(rec, dep)
            node.visible[cls] = rec
        return await self.resolve(rec, None)

    def find(self, token: Any) -> ProviderRecord:
        """The provider for ``token``: the root module's view first, then any module's
        providers and controllers (as NestJS's ``moduleRef.get``)."""
        rec = self.root.visible.get(token)
        if rec is None:
            for node in self.modules:
                rec = node.providers.get(token) or next(
                    (c for c in node.controllers if c.token is token), None
                )
                if rec is not None:
                    break
        if rec is None:
            raise ConfigurationError(f"No provider for {token_name(token)} in the app")
        return rec

    def controllers(self) -> Iterator[ProviderRecord]:
        """Controllers, plus providers that are WebSocket gateways (NestJS lists those
        as providers)."""
        for node in self.modules:
            yield from node.controllers
            for rec in node.providers.values():
                cls = rec.provider.use_class
                if cls is not None and hasattr(cls, GATEWAY_ATTR):
                    yield rec

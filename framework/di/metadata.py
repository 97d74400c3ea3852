"""Decorators and value types that describe modules and providers.

Decorators only record metadata on the class; ``container.py`` reads it once at start-up.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from framework.di.hints import capture_locals
from framework.exceptions import ConfigurationError

T = TypeVar("T")

MODULE_ATTR = "__framework_module__"
INJECTABLE_ATTR = "__framework_injectable__"
CONTROLLER_ATTR = "__framework_controller__"


class Scope(enum.Enum):
    """How long a provider's instance lives.

    SINGLETON: one per app (the default). TRANSIENT: a new one for every consumer.
    REQUEST: one per HTTP request or inbound message; a consumer of a request-scoped
    provider becomes request-scoped itself, as in NestJS.
    """

    SINGLETON = "singleton"
    TRANSIENT = "transient"
    REQUEST = "request"


class InjectionToken:
    """A named token for providers that are not classes (config values, clients)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"InjectionToken({self.name!r})"


Token = type | InjectionToken | str


@dataclass(frozen=True, slots=True)
class Inject:
    """Marks a parameter's token: ``Annotated[Config, Inject(CONFIG)]``."""

    token: Token


@dataclass(slots=True)
class Provider:
    """A provider declared by its token and exactly one recipe.

    Args:
        token: what consumers ask for (a class, an ``InjectionToken`` or a string).
        use_class: a class to construct (its ``__init__`` type hints are its dependencies).
        use_value: a ready value.
        use_factory: a callable, sync or async, called with the ``inject`` tokens resolved.
        use_existing: another token to alias.
        inject: the factory's dependency tokens, in parameter order.
        scope: the instance lifetime; ``None`` takes the class's ``@injectable`` scope.
    """

    token: Token
    use_class: type | None = None
    use_value: Any = None
    use_factory: Callable[..., Any] | None = None
    use_existing: Token | None = None
    inject: Sequence[Token] = ()
    scope: Scope | None = None
    _has_value: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        recipes = [
            self.use_class is not None,
            self._has_value or self.use_value is not None,
            self.use_factory is not None,
            self.use_existing is not None,
        ]
        if sum(recipes) == 0 and isinstance(self.token, type):
            self.use_class = self.token
        elif sum(recipes) != 1:
            raise ConfigurationError(
                f"Provider({self.token!r}) needs exactly one of use_class, use_value, "
                "use_factory or use_existing"
            )


def value_provider(token: Token, value: Any) -> Provider:
    """A provider for a ready value, including ``None``."""
    return Provider(token, use_value=value, _has_value=True)


@dataclass(slots=True)
class ModuleMeta:
    imports: list[Any]
    controllers: list[type]
    providers: list[Any]
    exports: list[Any]
    global_: bool


@dataclass(eq=False, slots=True)
class DynamicModule:
    """A module configured at import time, returned by ``for_root``-style classmethods."""

    module: type
    imports: Sequence[Any] = ()
    controllers: Sequence[type] = ()
    providers: Sequence[Any] = ()
    exports: Sequence[Any] = ()
    global_: bool = False


@dataclass(frozen=True, slots=True)
class ForwardRef:
    """A module import resolved late, to break an import cycle between modules."""

    factory: Callable[[], Any]


def forward_ref(factory: Callable[[], Any]) -> ForwardRef:
    """Refer to a module that is defined later: ``imports=[forward_ref(lambda: B)]``."""
    return ForwardRef(factory)


def module(
    *,
    imports: Sequence[Any] = (),
    controllers: Sequence[type] = (),
    providers: Sequence[Any] = (),
    exports: Sequence[Any] = (),
    global_: bool = False,
) -> Callable[[type[T]], type[T]]:
    """Declare a module: what it imports, provides, exports, and its controllers.

    A module sees its own providers and what its imports export; ``global_=True`` makes
    its exports visible everywhere.
    """

    def decorate(cls: type[T]) -> type[T]:
        meta = ModuleMeta(list(imports), list(controllers), list(providers), list(exports), global_)
        setattr(cls, MODULE_ATTR, meta)
        capture_locals(cls)
        return cls

    return decorate


def injectable(scope: Scope = Scope.SINGLETON) -> Callable[[type[T]], type[T]]:
    """Mark a class as a provider; its ``__init__`` type hints are its dependencies.

    The class may be declared inside a function: its hints may then name the classes
    that function defined before it (see ``framework.di.hints``).
    """

    def decorate(cls: type[T]) -> type[T]:
        setattr(cls, INJECTABLE_ATTR, scope)
        capture_locals(cls)
        return cls

    return decorate


@dataclass(frozen=True, slots=True)
class ControllerMeta:
    prefix: str
    scope: Scope


def controller(prefix: str = "", *, scope: Scope = Scope.SINGLETON) -> Callable[[type[T]], type[T]]:
    """Mark a class as a controller: HTTP routes under ``prefix`` and message handlers."""
    clean = "/" + prefix.strip("/") if prefix.strip("/") else ""

    def decorate(cls: type[T]) -> type[T]:
        setattr(cls, CONTROLLER_ATTR, ControllerMeta(clean, scope))
        capture_locals(cls)
        return cls

    return decorate


def module_meta(obj: Any) -> ModuleMeta | None:
    meta = obj.__dict__.get(MODULE_ATTR) if isinstance(obj, type) else None
    return meta if isinstance(meta, ModuleMeta) else None


def token_name(token: Any) -> str:
    if isinstance(token, type):
        return token.__name__
    if isinstance(token, InjectionToken):
        return token.name
    return repr(token)

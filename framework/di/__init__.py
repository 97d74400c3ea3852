"""Modules, providers, scopes and the module graph."""

from framework.di.container import REQUEST, Container
from framework.di.metadata import (
    DynamicModule,
    Inject,
    InjectionToken,
    Provider,
    Scope,
    controller,
    forward_ref,
    injectable,
    module,
    value_provider,
)

__all__ = [
    "REQUEST",
    "Container",
    "DynamicModule",
    "Inject",
    "InjectionToken",
    "Provider",
    "Scope",
    "controller",
    "forward_ref",
    "injectable",
    "module",
    "value_provider",
]

"""Find transports by name: the ``framework.transports`` entry point group.

A package makes its transport findable by naming the class in its ``pyproject.toml``::

    [project.entry-points."framework.transports"]
    redis-streams = "my_package.transport:RedisStreamsTransport"

Then ``load_transport("redis-streams", url=...)`` imports and creates it (tools such as a
CLI can offer every installed transport by name). The framework registers its own
transports (memory, kafka, ws, sse) the same way. Nothing is imported until a transport
is loaded, so listing names never pulls in a broker library.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from framework.exceptions import ConfigurationError
from framework.transports.base import Transport

GROUP = "framework.transports"
"""The entry point group transports are registered under."""


def _registered() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=GROUP):
        same = found.setdefault(ep.name, [])
        # One package seen twice on sys.path (an editable install and a build) is one.
        if all(other.value != ep.value for other in same):
            same.append(ep)
    return found


def available_transports() -> dict[str, str]:
    """Registered transport names and their ``"module:Class"`` targets, by name.

    Nothing is imported: a transport whose library is missing is still listed.
    """
    return {name: eps[0].value for name, eps in sorted(_registered().items())}


def transport_class(name: str) -> type[Transport]:
    """The ``Transport`` subclass registered as ``name``, imported.

    Raises:
        ConfigurationError: no transport has that name, two packages claim it, it cannot
            be imported (a missing library), or it is not a ``Transport`` subclass.
    """
    registered = _registered()
    candidates = registered.get(name)
    if not candidates:
        known = ", ".join(sorted(registered)) or "none"
        raise ConfigurationError(
            f"No transport named {name!r} is installed (installed: {known}); a package "
            f"registers one under the {GROUP!r} entry point group"
        )
    if len(candidates) > 1:
        targets = " and ".join(ep.value for ep in candidates)
        raise ConfigurationError(
            f"Two packages register a transport named {name!r}: {targets}; uninstall one "
            "or import the class you want directly"
        )
    ep = candidates[0]
    try:
        cls = ep.load()
    except ImportError as exc:
        raise ConfigurationError(
            f"Transport {name!r} ({ep.value}) cannot be imported: {exc}; is its library installed?"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise ConfigurationError(
            f"Entry point {name!r} ({ep.value}) is not a Transport subclass; register the "
            "class itself"
        )
    return cls


def load_transport(name: str, /, **options: Any) -> Transport:
    """Create the transport registered as ``name`` with ``options`` (its keyword arguments).

    Example:
        ``create_app(AppModule, transports=[load_transport("kafka", group_id="orders")])``

    Raises:
        ConfigurationError: as ``transport_class``.
    """
    return transport_class(name)(**options)

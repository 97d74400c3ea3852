"""Payload and reply types to JSON Schemas, with shared models in ``components/schemas``.

Every type goes through one ``TypeAdapter.json_schemas`` call, so a model used by several
handlers is one component, and two models with the same class name get distinct names.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Coroutine
from typing import Any, Literal

from pydantic import TypeAdapter

Mode = Literal["validation", "serialization"]

REF_TEMPLATE = "#/components/schemas/{model}"

_STREAMS = (AsyncIterator, AsyncGenerator, AsyncIterable)
_AWAITABLES = (Awaitable, Coroutine)


def reply_type(return_type: Any, is_stream: bool) -> Any:
    """What one reply message carries: ``T`` for ``T``, ``Awaitable[T]`` and, for a
    stream, ``AsyncIterator[T]`` / ``AsyncGenerator[T, ...]`` (one message per item)."""
    origin = typing.get_origin(return_type)
    args = typing.get_args(return_type)
    if origin in _AWAITABLES and args:
        return reply_type(args[-1], is_stream)
    if origin in _STREAMS:
        return args[0] if args else Any
    if is_stream:
        # An async generator without a usable annotation: the items are unknown.
        return Any
    return return_type


def type_title(tp: Any) -> str:
    """A short human name: ``Order``, ``int``, ``list[Order]``, ``any``."""
    if tp is Any:
        return "any"
    if tp is None or tp is type(None):
        return "null"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "")


class SchemaSet:
    """Collects ``(type, mode)`` pairs, then makes every schema in one pass.

    A type pydantic cannot describe (a starlette ``Response``, an arbitrary class) gets
    the empty schema ``{}`` (any JSON value) and is listed in ``unsupported``.
    """

    def __init__(self) -> None:
        self._wanted: dict[tuple[int, Mode], tuple[Any, Mode]] = {}
        self._schemas: dict[tuple[int, Mode], dict[str, Any]] = {}
        self.components: dict[str, Any] = {}
        self.unsupported: set[tuple[int, Mode]] = set()

    def want(self, tp: Any, mode: Mode) -> None:
        self._wanted.setdefault((id(tp), mode), (tp, mode))

    def build(self) -> None:
        inputs: list[tuple[tuple[int, Mode], Mode, TypeAdapter[Any]]] = []
        for key, (tp, mode) in self._wanted.items():
            try:
                adapter: TypeAdapter[Any] = TypeAdapter(tp)
                adapter.json_schema(mode=mode)  # fails here rather than in the batch
            except Exception:
                self.unsupported.add(key)
                continue
            inputs.append((key, mode, adapter))
        if not inputs:
            return
        by_key, defs = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
        for (key, _mode), schema in by_key.items():
            self._schemas[key] = dict(schema)
        self.components = dict(defs.get("$defs", {}))

    def schema(self, tp: Any, mode: Mode) -> dict[str, Any]:
        """The schema of ``tp`` (after ``build``); ``{}`` if pydantic cannot make one."""
        return self._schemas.get((id(tp), mode), {})

    def is_supported(self, tp: Any, mode: Mode) -> bool:
        return (id(tp), mode) not in self.unsupported

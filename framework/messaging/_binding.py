"""Binding a handler's parameters: the payload by its type hint, the context by its class.

Validators are built once per handler; per message they are one pydantic call straight
from the JSON bytes (or from an already decoded object, for transports that parse frames).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from framework.di.hints import type_hints
from framework.exceptions import ConfigurationError
from framework.messaging.context import MessageContext
from framework.messaging.streams import is_observable_type

Validator = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class HandlerSignature:
    """Positional order of a handler's parameters: "payload" and/or "context"."""

    order: tuple[str, ...]
    payload_type: Any
    context_type: type[MessageContext] | None
    return_type: Any
    is_stream: bool
    stream_input: Literal["iterator", "observable"] | None = None
    """The payload is an inbound stream: an ``AsyncIterator[T]`` (or ``AsyncIterable``),
    or a ReactiveX ``Observable[T]``; ``None`` for one message."""

    @property
    def item_type(self) -> Any:
        """``T`` of an inbound stream's payload type (``Any`` when not given)."""
        args = typing.get_args(self.payload_type)
        return args[0] if args else Any


def _is_context_type(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, MessageContext)


def analyse(
    fn: Callable[..., Any], owner: str, controller: type, module: type | None = None
) -> HandlerSignature:
    """The roles of ``fn``'s parameters; hints may use the names captured where ``fn``,
    its ``controller`` or the ``module`` listing it were declared."""
    hints = type_hints(fn, owner, controller.__name__, (controller, module))
    order: list[str] = []
    payload_type: Any = None
    context_type: type[MessageContext] | None = None
    for name, param in inspect.signature(fn).parameters.items():
        if name == "self":
            continue
        hint = hints.get(name, Any)
        if _is_context_type(hint):
            context_type = hint
            order.append("context")
        elif "payload" not in order:
            payload_type = hint
            order.append("payload")
        elif param.default is param.empty:
            raise ConfigurationError(
                f"{owner}: parameter {name!r} is neither the payload nor a MessageContext; "
                "a message handler takes one payload parameter and optionally a context"
            )
    ret = hints.get("return", Any)
    origin = typing.get_origin(ret)
    is_stream = (
        inspect.isasyncgenfunction(fn)
        or origin in (AsyncIterator, AsyncGenerator)
        or is_observable_type(origin or ret)
    )
    return HandlerSignature(
        tuple(order), payload_type, context_type, ret, is_stream, _stream_input(payload_type)
    )


def _stream_input(hint: Any) -> Literal["iterator", "observable"] | None:
    origin = typing.get_origin(hint) or hint
    if origin in (AsyncIterator, AsyncIterable):
        return "iterator"
    if is_observable_type(origin):
        return "observable"
    return None


def validators(tp: Any) -> tuple[Validator, Validator]:
    """``(from_json, from_python)``: JSON bytes in, or an already decoded object in; a
    value of ``tp`` out (``bytes`` payloads pass through both untouched)."""
    if tp is bytes:
        return as_is, as_is
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        # The core validator directly: model_validate_json's wrapper costs ~0.3 us a call.
        return tp.__pydantic_validator__.validate_json, tp.__pydantic_validator__.validate_python
    adapter: TypeAdapter[Any] = TypeAdapter(tp)
    return adapter.validate_json, adapter.validate_python


def make_validator(tp: Any) -> Validator:
    """``validate(raw)``: JSON bytes or a decoded object in, a value of ``tp`` out."""
    return either(*validators(tp))


def either(from_json: Validator, from_python: Validator) -> Validator:
    """One validator of ``validators``' pair: chooses by the class of what comes in."""
    if from_json is from_python:
        return from_json

    def validate(raw: Any) -> Any:
        if raw.__class__ is bytes:
            return from_json(raw)
        return from_python(raw)

    return validate


def as_is(raw: Any) -> Any:
    """The validator of ``bytes`` payloads (and of batches, validated item by item)."""
    return raw

"""``KafkaTable``: a keyed table that handlers read and write, partitioned like their
input and backed by a compacted changelog topic.

A table holds one dict per assigned input partition. Inside a Kafka handler call,
``get``/``set``/``delete`` work on the dict of the partition of the record in hand, so a
table keyed by the input's key sees every record of that key (co-partitioning). Writes
are applied at once; the changelog entries they make leave with the call's other outputs
when the call succeeds (in exactly-once mode in the batch's transaction), and a call
that raises has its writes undone. Before a partition's first batch its dict is rebuilt
from the changelog (``<group_id>-table-<name>-changelog``).
"""

from __future__ import annotations

import contextvars
import json
from typing import Any

from framework.exceptions import ConfigurationError, TransportError

_MISSING: Any = object()

Current = tuple[Any, Any, list[tuple["KafkaTable", Any, bytes, Any]]]
"""The call in hand: its partition, its ``Collected`` outputs, and its undo log."""

current: contextvars.ContextVar[Current | None] = contextvars.ContextVar(
    "framework_kafka_table_call", default=None
)


def _key(key: str | bytes) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode()
    raise TypeError(f"KafkaTable keys are str or bytes, not {type(key).__name__}")


class KafkaTable:
    """A keyed table for Kafka handlers (pass it to ``KafkaTransport(tables=[...])``
    and provide it to controllers like any value: ``Provider(Balances,
    use_value=table)`` or a subclass registered as a provider).

    Args:
        name: names the changelog topic; keep it stable (a new name starts empty).
        max_keys: keys held per partition, at most; a ``set`` of one more raises.

    Values are JSON values (they travel on the changelog).
    """

    def __init__(self, name: str, *, max_keys: int = 100_000) -> None:
        if not name:
            raise ConfigurationError("KafkaTable needs a name")
        if max_keys < 1:
            raise ConfigurationError(f"KafkaTable max_keys must be at least 1, not {max_keys}")
        self.name = name
        self.max_keys = max_keys
        self.changelog = ""
        """Set by the transport that serves the table."""
        self._data: dict[Any, dict[bytes, Any]] = {}

    def __repr__(self) -> str:
        return f"KafkaTable({self.name!r})"

    def _call(self) -> Current:
        call = current.get()
        if call is None:
            raise TransportError(
                f"{self!r} is used inside a Kafka handler call, on a transport that "
                "serves it (KafkaTransport(tables=[...]))"
            )
        return call

    def _partition(self, tp: Any) -> dict[bytes, Any]:
        data = self._data.get(tp)
        if data is None:
            raise TransportError(f"{self!r} has no state for {tp}; is it in tables=[...]?")
        return data

    # -- the handler's view ----------------------------------------------------------

    def get(self, key: str | bytes, default: Any = None) -> Any:
        """The value of ``key`` in the partition of the record in hand, or ``default``."""
        tp, _, _ = self._call()
        return self._partition(tp).get(_key(key), default)

    def set(self, key: str | bytes, value: Any) -> None:
        """Set ``key`` (written to the changelog when the call succeeds).

        Raises:
            TransportError: outside a handler call, or ``max_keys`` reached.
            TypeError: ``value`` is not JSON-serialisable.
        """
        tp, collected, undo = self._call()
        data, raw = self._partition(tp), _key(key)
        entry = json.dumps(value).encode()
        old = data.get(raw, _MISSING)
        if old is _MISSING and len(data) >= self.max_keys:
            raise TransportError(f"{self!r} is full ({self.max_keys} keys in {tp})")
        undo.append((self, tp, raw, old))
        data[raw] = value
        collected.raw(self.changelog, entry, raw, tp.partition)

    def delete(self, key: str | bytes) -> None:
        """Remove ``key`` (if present)."""
        tp, collected, undo = self._call()
        data, raw = self._partition(tp), _key(key)
        old = data.pop(raw, _MISSING)
        if old is not _MISSING:
            undo.append((self, tp, raw, old))
            collected.raw(self.changelog, None, raw, tp.partition)

    def __len__(self) -> int:
        """Keys held in memory, over every assigned partition."""
        return sum(len(d) for d in self._data.values())

    # -- the transport's side ----------------------------------------------------------

    def _undo(self, tp: Any, raw: bytes, old: Any) -> None:
        data = self._data.get(tp)
        if data is None:
            return
        if old is _MISSING:
            data.pop(raw, None)
        else:
            data[raw] = old

    def _restore(self, tp: Any, entries: list[tuple[bytes, bytes | None]]) -> None:
        data: dict[bytes, Any] = {}
        for key, value in entries:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = json.loads(value)
        self._data[tp] = data

    def _has(self, tp: Any) -> bool:
        return tp in self._data

    def _drop(self, tp: Any) -> None:
        self._data.pop(tp, None)


def undo(log: list[tuple[KafkaTable, Any, bytes, Any]]) -> None:
    """Undo a failed call's table writes, newest first."""
    for table, tp, raw, old in reversed(log):
        table._undo(tp, raw, old)
    log.clear()

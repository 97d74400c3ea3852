"""Who is connected, in which rooms, subscribed to which patterns: the registry every
push transport with sockets keeps (WebSocket's ``Hub``, each Socket.IO namespace).

Pure bookkeeping, no I/O: a member is any object with an ``id`` and the two sets it
keeps of its own rooms and subscriptions, so ``socket.rooms`` is read without a lookup.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Generic, Protocol, TypeVar

from framework.exceptions import ConfigurationError
from framework.messaging._cache import NameCache
from framework.messaging._patterns import matches, validate_subscription

logger = logging.getLogger("framework.transports")


class Member(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def rooms_(self) -> set[str]: ...

    @property
    def subscriptions_(self) -> set[str]: ...


M = TypeVar("M", bound=Member)


class Members(Generic[M]):
    """Open members by id, rooms and pattern subscriptions of one transport or namespace."""

    def __init__(self) -> None:
        self.sockets: dict[str, M] = {}
        self.rooms: dict[str, set[M]] = {}
        self.subs: dict[str, set[M]] = {}
        self._matches: NameCache[tuple[str, ...]] = NameCache()

    def add(self, sock: M) -> None:
        self.sockets[sock.id] = sock

    def remove(self, sock: M) -> None:
        """Forget ``sock``: it leaves every room and subscription."""
        self.sockets.pop(sock.id, None)
        for room in list(sock.rooms_):
            self.leave(sock, room)
        for pattern in list(sock.subscriptions_):
            self.unsubscribe(sock, pattern)

    def join(self, sock: M, room: str) -> None:
        sock.rooms_.add(room)
        self.rooms.setdefault(room, set()).add(sock)

    def leave(self, sock: M, room: str) -> None:
        sock.rooms_.discard(room)
        members = self.rooms.get(room)
        if members is not None:
            members.discard(sock)
            if not members:
                del self.rooms[room]

    def subscribe(self, sock: M, pattern: str) -> None:
        sock.subscriptions_.add(pattern)
        members = self.subs.get(pattern)
        if members is None:
            members = self.subs[pattern] = set()
            self._matches.clear()
        members.add(sock)

    def unsubscribe(self, sock: M, pattern: str) -> None:
        sock.subscriptions_.discard(pattern)
        members = self.subs.get(pattern)
        if members is not None:
            members.discard(sock)
            if not members:
                del self.subs[pattern]
                self._matches.clear()

    def subscribers(self, pattern: str) -> Collection[M]:
        """Members subscribed to ``pattern`` (a snapshot: safe while members leave)."""
        found = self._matches.get(pattern)
        if found is None:
            found = self._matches.keep(pattern, tuple(p for p in self.subs if matches(p, pattern)))
        if not found:
            return ()
        if len(found) == 1:
            return tuple(self.subs.get(found[0], ()))
        out: set[M] = set()
        for p in found:
            out.update(self.subs.get(p, ()))
        return out

    def targets(self, room: str | None) -> Iterable[M]:
        """Every member, or a room's (a snapshot)."""
        if room is None:
            return tuple(self.sockets.values())
        return tuple(self.rooms.get(room, ()))


_FORBIDDEN = {"status": "error", "message": "Forbidden resource"}


async def subscription_refusal(
    sock: Any,
    patterns: list[str],
    *,
    limit: int,
    can_subscribe: Callable[[Any, str], bool | Awaitable[bool]] | None,
) -> dict[str, Any] | None:
    """Why ``sock`` may not subscribe to ``patterns`` (the error payload), or ``None``:
    a pattern that is not valid, more than ``limit`` subscriptions, or ``can_subscribe``
    saying no (or raising)."""
    for p in patterns:
        try:
            validate_subscription(p)
        except ConfigurationError as exc:
            return {"status": "error", "message": str(exc)}
    if len(sock.subscriptions_ | set(patterns)) > limit:
        return {"status": "error", "message": f"At most {limit} subscriptions per connection"}
    if can_subscribe is not None:
        for p in patterns:
            try:
                allowed = can_subscribe(sock, p)
                if inspect.isawaitable(allowed):
                    allowed = await allowed
            except Exception as exc:
                logger.warning("can_subscribe raised %s; refused", type(exc).__name__)
                allowed = False
            if not allowed:
                return dict(_FORBIDDEN)
    return None

"""Connection state recovery (socket.io 4.6's feature): a client that reconnects within
the window keeps its socket id, rooms, subscriptions and ``data``, and receives the
broadcasts it missed, in order.

Every packet sent to a room, to everyone or to a socket (``emit``) while recovery is on
carries an offset as its last argument (as socket.io does it: the client keeps the last
one). A socket that loses its connection (not one that disconnects on purpose) is kept
for ``window`` seconds; its client reconnects with ``{"pid", "offset"}`` in the CONNECT
auth, and gets every kept packet after that offset that targeted it. Memory is bounded:
at most ``max_packets`` packets and ``max_sessions`` sockets are kept, the oldest go
first.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from framework.messaging._patterns import matches

if TYPE_CHECKING:
    from framework.transports.socketio.socket import SioSocket


@dataclass(slots=True)
class Restored:
    """What a recovered socket gets back."""

    sid: str
    pid: str
    rooms: set[str]
    subscriptions: set[str]
    data: dict[str, Any]
    missed: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Kept:
    namespace: str
    restored: Restored
    at: float
    offset_seq: int
    """The sequence number of the last packet stored when it left."""


@dataclass(slots=True)
class _Sent:
    seq: int
    at: float
    namespace: str
    room: str | None
    pattern: str | None
    exclude: str | None
    frame: str


class Recovery:
    """The kept packets and sockets of one transport (see the module docstring)."""

    def __init__(self, window: float, *, max_packets: int = 10_000, max_sessions: int = 10_000):
        self.window = window
        self.max_packets = max_packets
        self.max_sessions = max_sessions
        self._prefix = os.urandom(4).hex() + "-"  # offsets of another process never match
        self._seq = itertools.count(1)
        self._last = 0
        self._sent: deque[_Sent] = deque()
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    def add(
        self,
        namespace: str,
        build: Callable[[str], str],
        *,
        room: str | None = None,
        pattern: str | None = None,
        exclude: str | None = None,
    ) -> str:
        """Stamp and keep a packet: ``build(offset_json)`` makes the frame with the offset
        as its last argument. Returns the frame."""
        seq = self._last = next(self._seq)
        frame = build('"' + self._prefix + str(seq) + '"')
        now = time.monotonic()
        sent = self._sent
        sent.append(_Sent(seq, now, namespace, room, pattern, exclude, frame))
        self._prune(now)
        return frame

    def _prune(self, now: float) -> None:
        sent = self._sent
        horizon = now - self.window
        while sent and (len(sent) > self.max_packets or sent[0].at < horizon):
            sent.popleft()
        kept = self._kept
        while kept:
            first = next(iter(kept.values()))
            if first.at >= horizon and len(kept) <= self.max_sessions:
                break
            kept.popitem(last=False)

    def keep(self, namespace: str, sock: SioSocket) -> None:
        """``sock`` lost its connection: keep its state for the window."""
        restored = Restored(
            sock.id, sock.pid, set(sock.rooms_), set(sock.subscriptions_), sock.data
        )
        self._kept[sock.pid] = _Kept(namespace, restored, time.monotonic(), self._last)
        self._prune(time.monotonic())

    def restore(self, namespace: str, auth: dict[str, Any]) -> Restored | None:
        """The state of the socket a reconnecting client had, or ``None`` (new socket)."""
        pid = auth.get("pid")
        if pid.__class__ is not str:
            return None
        self._prune(time.monotonic())
        kept = self._kept.get(pid)
        if kept is None or kept.namespace != namespace:
            return None
        after = kept.offset_seq
        offset = auth.get("offset")
        if offset.__class__ is str and offset.startswith(self._prefix):
            tail = offset[len(self._prefix) :]
            if tail.isdigit():
                after = min(after, int(tail))
        sent = self._sent
        if after and sent and sent[0].seq > after + 1:
            return None  # what it missed is gone: a fresh start
        del self._kept[pid]
        state = kept.restored
        state.missed = [p.frame for p in sent if p.seq > after and _targets(p, state, namespace)]
        return state


def _targets(sent: _Sent, state: Restored, namespace: str) -> bool:
    if sent.namespace != namespace or sent.exclude == state.sid:
        return False
    if sent.pattern is not None:
        return any(matches(p, sent.pattern) for p in state.subscriptions)
    return sent.room is None or sent.room in state.rooms

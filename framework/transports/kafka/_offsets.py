"""Which offsets to commit. Pure bookkeeping, no I/O, no clock.

Records of one partition finish in offset order, so a partition's watermark (the offset
Kafka should resume from) is the offset after the last finished record. The tracker
keeps the watermark of every partition with uncommitted progress and says when a commit
is due by count (after ``commit_every`` finished records; the caller's timer covers
``commit_interval``). Offsets never move backwards, even when a failed commit is put
back after newer progress.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

from framework.exceptions import ConfigurationError

K = TypeVar("K", bound=Hashable)


class OffsetTracker(Generic[K]):
    """Uncommitted watermarks per partition.

    Args:
        commit_every: finished records after which a commit is due.

    Raises:
        ConfigurationError: ``commit_every`` is below 1.
    """

    __slots__ = ("_committed", "_counts", "_pending", "commit_every")

    def __init__(self, *, commit_every: int) -> None:
        if commit_every < 1:
            raise ConfigurationError(f"commit_every must be at least 1 record, not {commit_every}")
        self.commit_every = commit_every
        self._pending: dict[K, int] = {}
        self._counts: dict[K, int] = {}
        self._committed: dict[K, int] = {}

    def done(self, partition: K, next_offset: int, count: int = 1) -> bool:
        """Record that every record before ``next_offset`` is finished.

        Returns:
            True when a commit is now due by count.
        """
        if next_offset > self._pending.get(partition, self._committed.get(partition, -1)):
            self._pending[partition] = next_offset
        self._counts[partition] = self._counts.get(partition, 0) + count
        return self.uncommitted >= self.commit_every

    def seed(self, partition: K, position: int) -> None:
        """Record a newly assigned partition's starting position.

        Committing it pins the position, so a later owner resumes here rather than at
        whatever ``auto_offset_reset`` finds by then.
        """
        self.done(partition, position, 0)

    @property
    def uncommitted(self) -> int:
        """Finished records not yet committed."""
        return sum(self._counts.values())

    def take(self, partitions: Iterable[K] | None = None) -> dict[K, int]:
        """The offsets to commit (all, or only ``partitions``), now marked committed."""
        if partitions is None:
            taken, self._pending = self._pending, {}
            self._counts.clear()
        else:
            taken = {}
            for p in partitions:
                if p in self._pending:
                    taken[p] = self._pending.pop(p)
                self._counts.pop(p, None)
        self._committed.update(taken)
        return taken

    def restore(self, offsets: Mapping[K, int]) -> None:
        """Put back offsets whose commit failed (newer progress wins)."""
        for p, offset in offsets.items():
            if self._committed.get(p) == offset:
                del self._committed[p]
            if offset > self._pending.get(p, -1):
                self._pending[p] = offset

    def forget(self, partitions: Iterable[K]) -> None:
        """Drop revoked partitions: their progress now belongs to another member."""
        for p in partitions:
            self._pending.pop(p, None)
            self._counts.pop(p, None)
            self._committed.pop(p, None)

    def watermark(self, partition: K) -> int | None:
        """The offset after the last finished record (committed or not), if known."""
        return self._pending.get(partition, self._committed.get(partition))

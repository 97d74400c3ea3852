"""The streamed replies one connection is running, by request id (WebSocket frames'
``id``, Socket.IO ``stream`` ids): looked up to refuse a reused id, counted against
``max_streams``, cancelled by ``cancel`` or when the connection goes."""

from __future__ import annotations

import asyncio
from typing import Any


class RunningStreams:
    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: dict[Any, asyncio.Task[None]] = {}

    def add(self, sid: Any, task: asyncio.Task[None]) -> None:
        """Track ``task`` under ``sid`` until it ends (``None``: it has no id, and ends by
        itself or with the connection)."""
        key = object() if sid is None else sid
        tasks = self._tasks
        tasks[key] = task
        task.add_done_callback(lambda _: tasks.pop(key, None))

    def __contains__(self, sid: Any) -> bool:
        return sid in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self, sid: Any) -> bool:
        """Cancel the stream ``sid``; ``False`` if none runs under it."""
        task = self._tasks.pop(sid, None)
        if task is None:
            return False
        task.cancel()
        return True

    def cancel_all(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        self._tasks.clear()

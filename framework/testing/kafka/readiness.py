"""Readiness of the broker: one real Metadata round trip, run from synchronous code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["probe_metadata", "run_blocking"]

_T = TypeVar("_T")


def run_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run *coro* in a fresh event loop, on a helper thread if a loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: list[_T] = []
    err: list[BaseException] = []

    def target() -> None:
        try:
            box.append(asyncio.run(coro))
        except BaseException as exc:
            err.append(exc)

    thread = threading.Thread(target=target, name="kafka-broker-probe", daemon=True)
    thread.start()
    thread.join()
    if err:
        raise err[0]
    return box[0]


async def probe_metadata(host: str, port: int, node_id: int, limit: float) -> str | None:
    """Send one Metadata request; return ``None`` if the broker serves, else a reason."""
    from aiokafka.conn import create_conn  # type: ignore[import-untyped]
    from aiokafka.protocol.metadata import MetadataRequest  # type: ignore[import-untyped]

    try:
        async with asyncio.timeout(limit):
            conn = await create_conn(host, port, request_timeout_ms=int(limit * 1000))
            try:
                resp = await conn.send(MetadataRequest(None))
            finally:
                conn.close()
    except Exception as exc:  # refused, reset, timeout, protocol error: not ready yet
        return f"metadata request failed: {type(exc).__name__}: {exc}"
    broker_ids = {int(b[0]) for b in resp.brokers}
    if node_id not in broker_ids:
        return f"broker {node_id} not in metadata yet (brokers={sorted(broker_ids)})"
    api_version = int(resp.API_VERSION)
    for topic_data in resp.topics:
        error_code, topic = int(topic_data[0]), str(topic_data[1])
        partitions = topic_data[3] if api_version >= 1 else topic_data[2]
        if error_code != 0:
            return f"topic {topic!r} has error code {error_code}"
        for part in partitions:
            if int(part[2]) < 0:
                return f"partition {topic}-{part[1]} has no leader yet"
    return None

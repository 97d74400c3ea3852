"""Supervision of a running Kafka transport: no zombie consumers.

A consumer whose loop died, or that has had no broker connection for longer than
``disconnected_timeout``, consumes nothing while the process looks healthy (the
peers' zombie-consumer reports). The supervisor checks every ``interval`` seconds;
on a failure, readiness turns false at once and then, as ``on_failure`` says:

- ``"restart"`` (default): stop the transport's clients and start them again, with
  backoff between failed attempts, until it runs again (readiness then comes back);
- ``"exit"``: ask the host to stop, so ``app.run()`` / ``framework run`` exit with
  status 1 and the orchestrator restarts the process.

"Connected" means the consumer knows its group coordinator: aiokafka forgets it when
the broker connection is lost, and finds it again once the broker is back (librdkafka's
group state, for the confluent engine, leaves "up" likewise).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from framework.backoff import Backoff

logger = logging.getLogger("framework.kafka")

OnFailure = Literal["restart", "exit"]


def coordinator_known(consumer: Any) -> bool:
    """Whether a consumer knows its group coordinator (``True`` when the consumer does
    not say: it is then never reported disconnected). The confluent engine's consumer
    says so itself (``coordinator_known()``); aiokafka's has it in its coordinator."""
    known = getattr(consumer, "coordinator_known", None)
    if known is not None:
        return bool(known())
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        return True
    return getattr(coordinator, "coordinator_id", 0) is not None


class Supervisor:
    """Watches one transport (see the module docstring).

    Args:
        problem: the transport's current problem, if any: ``(reason, disconnected)``
            where ``disconnected`` says it is a lost connection (which must last
            ``disconnected_timeout`` to count) rather than a dead loop.
        restart: stops and starts the transport's clients again (raises on failure).
        fail: the host's ``fail(reason)`` (for ``on_failure="exit"``).
        on_failure: ``"restart"`` or ``"exit"``.
        disconnected_timeout: seconds without a broker connection that count as a
            failure; ``None`` never counts it.
        interval: seconds between checks.
        backoff: waits between failed restarts.
    """

    def __init__(
        self,
        problem: Callable[[], tuple[str, bool] | None],
        restart: Callable[[], Coroutine[Any, Any, None]],
        fail: Callable[[str], None],
        *,
        on_failure: OnFailure,
        disconnected_timeout: float | None,
        interval: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._problem = problem
        self._restart = restart
        self._fail = fail
        self.on_failure = on_failure
        self.disconnected_timeout = disconnected_timeout
        self.interval = interval
        self.backoff = backoff or Backoff(1.0, 30.0, jitter=0.2)
        self.failure: str | None = None
        """Why the transport is not serving, while it is failed (readiness is false)."""
        self.restarts = 0
        self._since: float | None = None
        self._task: asyncio.Task[None] | None = None

    def watch(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._watch(), name="kafka-supervise"
            )

    @property
    def watching(self) -> bool:
        """Whether the calling code runs inside the supervisor (a restart)."""
        return self._task is not None and self._task is asyncio.current_task()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._since = None

    def check(self, now: float) -> str | None:
        """The failure to act on now, if any."""
        found = self._problem()
        if found is None:
            self._since = None
            return None
        reason, disconnected = found
        if not disconnected:
            return reason
        if self.disconnected_timeout is None:
            return None
        if self._since is None:
            self._since = now
        waited = now - self._since
        if waited < self.disconnected_timeout:
            return None
        return f"{reason} for {waited:.0f} s"

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            failure = self.check(time.monotonic())
            if failure is None:
                continue
            self.failure = failure
            if self.on_failure == "exit":
                logger.error("Kafka consumer failed (%s); stopping the app", failure)
                self._fail(f"Kafka consumer failed: {failure}")
                return
            logger.error("Kafka consumer failed (%s); restarting it", failure)
            await self._restart_until_running()

    async def _restart_until_running(self) -> None:
        attempt = 0
        cause = self.failure
        me = asyncio.current_task()
        assert me is not None
        while True:
            attempt += 1
            # Each attempt in a task of its own: stopping aiokafka clients from a dead
            # broker can swallow a timeout's cancellation and leave it pending on the
            # task that awaited them; here it ends only that attempt.
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._restart())
            try:
                try:
                    await task
                except asyncio.CancelledError:
                    if me.cancelling():
                        raise  # stop(): the supervisor itself is cancelled
                    raise RuntimeError("the restart was cancelled from inside") from None
            except Exception as exc:
                delay = self.backoff.delay(attempt)
                # What keeps the transport down now (a refused login, say), not only
                # what first brought it down.
                self.failure = f"{cause}; restart {attempt} failed: {exc}"
                logger.error("Kafka restart %d failed (%s); next in %.1f s", attempt, exc, delay)
                await asyncio.sleep(delay)
                continue
            self.restarts += 1
            self.failure = None
            self._since = None
            logger.warning("Kafka consumer restarted after %d attempt(s)", attempt)
            return

"""The Observable bridge on its own: lazy subscription, disposal, threads, the optional
import (over real transports: tests/transports/test_contract_rx.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

import pytest
import reactivex
from reactivex.abc import ObserverBase, SchedulerBase
from reactivex.disposable import Disposable

from framework import ConfigurationError
from framework.messaging.streams import drive, is_stream, iterate
from framework.rx import ObservableStream, from_observable
from tests.messaging.test_streams import Recorder
from tests.timing import TIME_FACTOR


class Probe:
    """An Observable that records its subscriptions and disposals; emits nothing itself."""

    def __init__(self) -> None:
        self.subscribed = 0
        self.disposed = asyncio.Event()
        self.observer: ObserverBase[Any] | None = None
        self.observable = reactivex.create(self._subscribe)

    def _subscribe(self, observer: ObserverBase[Any], scheduler: SchedulerBase | None) -> Any:
        self.subscribed += 1
        self.observer = observer
        return Disposable(self.disposed.set)


def test_nothing_imports_reactivex_unless_asked() -> None:
    code = (
        "import sys, framework, framework.transports, framework.http, framework.testing\n"
        "import framework.transports.kafka, framework.transports.websocket\n"
        "import framework.transports.sse, framework.observability, framework.asyncapi\n"
        "import example_app\n"
        "assert 'reactivex' not in sys.modules, 'reactivex was imported'\n"
        "sys.modules['reactivex'] = None  # as if it were not installed\n"
        "try:\n"
        "    framework.ClientProxy.observe(None, 'p', 1)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'framework[rx]'" in out.stdout


def test_observables_are_streams() -> None:
    assert is_stream(reactivex.of(1))
    assert is_stream(reactivex.subject.Subject())
    assert isinstance(iterate(reactivex.of(1)), ObservableStream)
    with pytest.raises(ConfigurationError, match="buffer_size"):
        from_observable(reactivex.of(1), buffer_size=0)
    with pytest.raises(ConfigurationError, match="overflow"):
        from_observable(reactivex.of(1), overflow="block")  # type: ignore[arg-type]


async def test_subscribes_on_first_pull_and_disposes_on_close() -> None:
    probe = Probe()
    stream = from_observable(probe.observable)
    assert probe.subscribed == 0  # a stream never iterated never subscribes
    pull = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    assert probe.subscribed == 1 and probe.observer is not None
    probe.observer.on_next("a")
    assert await pull == "a"
    await stream.aclose()
    assert probe.disposed.is_set()


async def test_cancelling_the_drive_disposes_the_subscription() -> None:
    probe = Probe()
    task = asyncio.ensure_future(drive(probe.observable, Recorder()))
    await asyncio.sleep(0)
    assert probe.subscribed == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert probe.disposed.is_set()


async def test_items_from_another_thread_arrive_in_order() -> None:
    probe = Probe()
    out = Recorder()
    task = asyncio.ensure_future(drive(probe.observable, out))
    await asyncio.sleep(0)
    observer = probe.observer
    assert observer is not None

    def emit() -> None:
        for i in range(200):
            observer.on_next(i)
        observer.on_completed()

    thread = threading.Thread(target=emit)
    thread.start()
    await asyncio.wait_for(task, 10 * TIME_FACTOR)
    thread.join()
    assert out.writes == [*(("item", str(i).encode()) for i in range(200)), ("end", None)]
    assert probe.disposed.is_set()  # completion disposes too (Rx's auto-detach)


async def test_a_stream_closed_before_its_first_pull_never_subscribes() -> None:
    probe = Probe()
    stream = from_observable(probe.observable)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert probe.subscribed == 0


def test_an_observable_return_annotation_marks_a_streaming_handler() -> None:
    from framework.messaging._binding import analyse

    class Controller:
        def ticks(self, n: int) -> reactivex.Observable[int]:
            return reactivex.range(n)

        def one(self, n: int) -> int:
            return n

    assert analyse(Controller.ticks, "ticks", Controller).is_stream
    assert not analyse(Controller.one, "one", Controller).is_stream

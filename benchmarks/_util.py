"""Shared helpers for benchmarks: best-of-N timing, ratio printing, and the results
file (``--json PATH``) that ``benchmarks/charts.py`` draws the docs' charts from."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

LOOP = os.environ.get("BENCH_LOOP", "auto")
"""The event loop of benchmark servers, by uvicorn's names: ``auto`` (the default) is
what ``app.run()`` uses, uvloop when installed; ``BENCH_LOOP=asyncio`` compares."""


def loop_name() -> str:
    """The loop ``LOOP`` resolves to."""
    if LOOP != "auto":
        return LOOP
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_on_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a server's coroutine on the loop ``app.run()`` would pick (see ``LOOP``)."""
    import uvicorn

    factory = uvicorn.Config(app=None, loop=LOOP).get_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


async def best_rate(run: Callable[[], Awaitable[int]], repeats: int = 5) -> float:
    """Items per second of the fastest of ``repeats`` runs (noise only slows things)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        count = await run()
        best = max(best, count / (time.perf_counter() - start))
    return best


def report(name: str, ours: float, baseline: float, target: float, unit: str = "msg/s") -> bool:
    ratio = ours / baseline
    verdict = "OK" if ratio >= target else "BELOW TARGET"
    print(f"{name}: framework {ours:,.0f} {unit}, baseline {baseline:,.0f} {unit}")
    print(f"{name}: ratio {ratio:.2f} (target >= {target}) {verdict}")
    return ratio >= target


def pop_json(argv: list[str]) -> str | None:
    """Take ``--json PATH`` out of ``argv`` (for scripts with positional arguments) and
    return ``PATH`` (``None`` when it is not there)."""
    if "--json" not in argv:
        return None
    at = argv.index("--json")
    if at + 1 >= len(argv):
        raise SystemExit("--json needs a path")
    path = argv[at + 1]
    del argv[at : at + 2]
    return path


class Results:
    """What one benchmark run measured: per scenario, each series' value in every round.

    ``save(path)`` writes it as JSON (the format ``benchmarks/charts.py`` reads)::

        {"benchmark": "kafka_consume", "command": "...", "measured_at": "...",
         "scenarios": [{"name": "4 partitions", "unit": "records/s",
                        "higher_is_better": true,
                        "series": [{"name": "framework", "ours": true,
                                    "rounds": [163215.0, 158002.0], "best": 163215.0},
                                   ...]}]}

    ``best`` is the highest round (the lowest when lower is better): noise on a shared
    machine only ever makes a round worse.
    """

    def __init__(self, benchmark: str) -> None:
        self.benchmark = benchmark
        self._scenarios: dict[str, dict[str, Any]] = {}

    def add(
        self,
        scenario: str,
        series: str,
        value: float,
        unit: str,
        *,
        ours: bool = False,
        higher_is_better: bool = True,
    ) -> None:
        """One round's ``value`` of ``series`` in ``scenario`` (series keep their order
        of first appearance)."""
        found = self._scenarios.setdefault(
            scenario,
            {"name": scenario, "unit": unit, "higher_is_better": higher_is_better, "series": {}},
        )
        entry = found["series"].setdefault(series, {"name": series, "ours": ours, "rounds": []})
        entry["rounds"].append(float(value))

    def as_dict(self) -> dict[str, Any]:
        scenarios = []
        for scenario in self._scenarios.values():
            pick = max if scenario["higher_is_better"] else min
            series = [{**s, "best": pick(s["rounds"])} for s in scenario["series"].values()]
            scenarios.append({**scenario, "series": series})
        return {
            "benchmark": self.benchmark,
            "command": " ".join(["python -m", f"benchmarks.{self.benchmark}", *sys.argv[1:]]),
            "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "scenarios": scenarios,
        }

    def save(self, path: str | None) -> None:
        """Write the results to ``path`` (nothing when ``None``: no ``--json`` given)."""
        if path is None:
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        print(f"results written to {path}")


def json_option(argv: list[str]) -> tuple[list[str], str | None]:
    """Split ``--json PATH`` off a script's positional arguments: ``(rest, PATH)``."""
    if "--json" not in argv:
        return argv, None
    at = argv.index("--json")
    if at + 1 >= len(argv):
        raise SystemExit("--json needs a file path")
    return argv[:at] + argv[at + 2 :], argv[at + 1]

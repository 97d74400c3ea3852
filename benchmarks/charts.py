"""Bar charts (SVG) of saved benchmark results, for the docs' benchmarks page.

Reads results files written by the benchmark scripts' ``--json PATH`` option (the format
of ``benchmarks._util.Results``) and writes one chart per benchmark: for each scenario,
one horizontal bar per series (the framework and its peers), its best round as the bar,
every round in its label. Files of the same benchmark (say a 1-partition and a
4-partition run of ``kafka_consume``) share one chart. The SVG is written by hand: no
plotting library, no scripts, no web fonts, so it renders the same on any docs host.

Run: ``python -m benchmarks.charts [RESULTS.json ...] [--out docs/img/benchmarks]``
(default: every ``benchmarks/results/*.json``), or ``make charts``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

RESULTS_DIR = Path(__file__).parent / "results"
OUT_DIR = Path(__file__).parent.parent / "docs" / "img" / "benchmarks"

WIDTH = 820
LABEL_WIDTH = 230  # series names, right-aligned before the bars
VALUE_WIDTH = 270  # room after the longest bar for its value and rounds
BAR_HEIGHT = 18
ROW = 24  # one series
SCENARIO_GAP = 34  # a scenario's title and the space above it
OURS = "#2f6fdf"
PEER = "#9aa5b1"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def load(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """The scenarios of each benchmark, in file order.

    Raises:
        SystemExit: a file is not a results file (what is wrong, and where).
    """
    found: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
            name = data["benchmark"]
            scenarios = data["scenarios"]
            for scenario in scenarios:
                for series in scenario["series"]:
                    float(series["best"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}: not a benchmark results file ({exc!r})") from exc
        found.setdefault(name, []).extend(scenarios)
    return found


def render(benchmark: str, scenarios: list[dict[str, Any]]) -> str:
    """One SVG document: a title, then each scenario's bars scaled to its largest."""
    bar_room = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    parts: list[str] = []
    y = 28
    parts.append(
        f'<text x="10" y="{y}" class="title" font-size="16" font-weight="bold">'
        f"{escape(benchmark)}</text>"
    )
    for scenario in scenarios:
        better = (
            "higher is better" if scenario.get("higher_is_better", True) else ("lower is better")
        )
        y += SCENARIO_GAP
        parts.append(
            f'<text x="10" y="{y - 8}" class="scenario" font-size="13" font-weight="bold">'
            f"{escape(scenario['name'])} ({escape(scenario['unit'])}, {better})</text>"
        )
        top = max(float(s["best"]) for s in scenario["series"]) or 1.0
        for series in scenario["series"]:
            best = float(series["best"])
            length = max(bar_room * best / top, 1.0)
            rounds = series.get("rounds", [best])
            detail = _number(best)
            if len(rounds) > 1:
                detail += " (rounds: " + ", ".join(_number(r) for r in rounds) + ")"
            name = escape(series["name"])
            colour = OURS if series.get("ours") else PEER
            parts.append(
                f'<g class="series" data-series="{name}" data-best="{best}">'
                f'<text x="{LABEL_WIDTH - 8}" y="{y + 13}" text-anchor="end" '
                f'class="label" font-size="12">{name}</text>'
                f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" '
                f'height="{BAR_HEIGHT}" fill="{colour}"><title>{name}: {detail}</title></rect>'
                f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 13}" class="value" '
                f'font-size="11">{escape(detail)}</text></g>'
            )
            y += ROW
    height = y + 16
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" role="img" '
        f'aria-label="{escape(benchmark)} benchmark results">'
        f'<rect width="100%" height="100%" fill="white"/>' + "".join(parts) + "</svg>\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path, help="results files (JSON)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the SVG files")
    args = parser.parse_args(argv)
    paths = args.results or sorted(RESULTS_DIR.glob("*.json"))
    if not paths:
        print(f"no results files given and none in {RESULTS_DIR}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for benchmark, scenarios in load(paths).items():
        target = args.out / f"{benchmark}.svg"
        target.write_text(render(benchmark, scenarios))
        print(f"{target}: {len(scenarios)} scenario(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

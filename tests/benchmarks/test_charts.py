"""``python -m benchmarks.charts``: a saved results file in, an SVG bar chart out, with a
bar and a label for every series of every scenario (what the docs' benchmarks page
embeds)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.cli.helpers import COMMAND_TIMEOUT_S, REPO_ROOT

SVG = "{http://www.w3.org/2000/svg}"

RESULTS = {
    "benchmark": "kafka_consume",
    "command": "python -m benchmarks.kafka_consume --partitions 4",
    "measured_at": "2026-12-02T04:00:00+00:00",
    "machine": "x86_64, 2 cores",
    "scenarios": [
        {
            "name": "4 partitions, plain",
            "unit": "records/s",
            "higher_is_better": True,
            "series": [
                {"name": "framework", "ours": True, "rounds": [150e3, 163e3], "best": 163e3},
                {"name": "strongest bare aiokafka", "rounds": [228e3], "best": 228e3},
            ],
        },
        {
            "name": "one broadcast, 5,000 clients",
            "unit": "ms",
            "higher_is_better": False,
            "series": [
                {"name": "framework <app port>", "ours": True, "rounds": [108.0], "best": 108.0},
                {"name": "NestJS", "rounds": [88.0], "best": 88.0},
            ],
        },
    ],
}


def charts(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.charts", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def test_a_saved_result_becomes_an_svg_with_a_bar_and_label_per_series(tmp_path: Path) -> None:
    saved = tmp_path / "kafka_consume-4p.json"
    saved.write_text(json.dumps(RESULTS))
    out = tmp_path / "img"

    done = charts(saved, "--out", out)

    assert done.returncode == 0, done.stderr
    root = ET.parse(out / "kafka_consume.svg").getroot()
    assert root.tag == f"{SVG}svg"
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "kafka_consume" in texts
    assert "4 partitions, plain (records/s, higher is better)" in texts
    assert "one broadcast, 5,000 clients (ms, lower is better)" in texts
    groups = [g for g in root.iter(f"{SVG}g") if g.get("class") == "series"]
    assert [g.get("data-series") for g in groups] == [
        "framework",
        "strongest bare aiokafka",
        "framework <app port>",
        "NestJS",
    ]
    widths = {}
    for group in groups:
        (bar,) = group.iter(f"{SVG}rect")
        label, value = (t for t in group.iter(f"{SVG}text"))
        assert label.text == group.get("data-series")
        widths[group.get("data-series")] = float(bar.get("width", "0"))
        # The framework's bar stands out from its peers'.
        fill = bar.get("fill")
        assert (fill == "#2f6fdf") == group.get("data-series", "").startswith("framework")
    assert value.text == "88"
    # Each scenario is scaled to its largest value.
    assert widths["framework"] / widths["strongest bare aiokafka"] == pytest.approx(
        163 / 228, rel=0.01
    )
    assert widths["NestJS"] / widths["framework <app port>"] == pytest.approx(88 / 108, rel=0.01)
    framework_value = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "value")
    assert framework_value.text == "163,000 (rounds: 150,000, 163,000)"


def test_a_file_that_is_not_a_result_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"benchmark": "x"}')

    done = charts(bad, "--out", tmp_path / "img")

    assert done.returncode != 0
    assert "notes.json: not a benchmark results file" in done.stderr
    assert not (tmp_path / "img" / "x.svg").exists()

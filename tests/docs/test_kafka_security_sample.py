"""The sample of docs/transports/kafka.md's "Security (TLS and SASL)" section runs as
written against the local broker's SASL_SSL listener, configured from the variables
``framework kafka start --security sasl_ssl`` prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from framework.testing.kafka import LocalKafkaBroker
from framework.testing.kafka.cli import client_settings
from tests.docs.test_code_samples import blocks
from tests.timing import TIME_FACTOR

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "transports" / "kafka.md"
SECTION = "## Security (TLS and SASL)"


def section_sample() -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(SECTION)
    first_line = text.count("\n", 0, start) + 1
    end = text.find("\n## ", start + len(SECTION))
    last_line = text.count("\n", 0, end) + 1 if end >= 0 else 10**9
    found = [b for b in blocks(PAGE) if first_line < b.line < last_line]
    assert len(found) == 1, f"expected one sample in {SECTION!r}, found {len(found)}"
    return found[0].code


@pytest.mark.kafka
def test_the_security_sample_runs_on_a_sasl_ssl_listener(
    kafka_secure_broker: LocalKafkaBroker, tmp_path: Path
) -> None:
    lines = client_settings(kafka_secure_broker, "sasl_ssl")
    settings = dict(line.split("=", 1) for line in lines)
    script = tmp_path / "sample.py"
    script.write_text(section_sample(), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **settings},
        capture_output=True,
        text=True,
        timeout=60 * TIME_FACTOR,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""The getting-started page works as written: its files are saved and its test is run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "getting-started.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_pages_app_and_test_pass_as_written(tmp_path: Path) -> None:
    app_code, test_code, transports_code = python_blocks()
    (tmp_path / "shop.py").write_text(app_code)
    (tmp_path / "test_shop.py").write_text(test_code)
    (tmp_path / "transports.py").write_text(
        "from shop import ShopModule, create_app\n" + transports_code
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_shop.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    # The multi-transport snippet builds an app (it connects only when started).
    built = subprocess.run(
        [sys.executable, "-c", "import transports; print(type(transports.app).__name__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert built.stdout.strip() == "Application", built.stderr

"""The Python samples in docs/ compile, and the pages whose samples form a program run.

Every ```python block of a page is compiled (top-level ``await`` allowed). The blocks of
a page that are not marked with an HTML comment ``<!-- fragment -->`` ending the line
before them are joined, in order, into one script that must run to completion: such a page is a
worked example whose assertions are checked here. A block that cannot run on its own
(it needs a broker, a server, or names defined elsewhere) is marked as a fragment.

getting-started.md has its own test (tests/docs/test_getting_started.py).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.timing import TIME_FACTOR

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
TESTED_ELSEWHERE = {"getting-started.md"}
RUN_TIMEOUT_S = 60.0 * TIME_FACTOR
"""Upper bound for one page's program, in seconds."""

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
FRAGMENT = "<!-- fragment -->"


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    fragment: bool


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        indent = match.group("indent")
        lines = match.group("body").splitlines(keepends=True)
        code = "".join(ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines)
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, match.start()) + 2  # the first line of code
        name = str(page.relative_to(DOCS))
        # The marker ends the line before the block (a line of its own, or inside a list
        # item the end of its text, where a line of raw HTML would end the list).
        found.append(Block(name, line, code, before.endswith(FRAGMENT)))
    return found


PAGES = sorted(p for p in DOCS.rglob("*.md") if p.name not in TESTED_ELSEWHERE)
ALL_BLOCKS = [b for p in PAGES for b in blocks(p)]
RUNNABLE = [p for p in PAGES if any(not b.fragment for b in blocks(p))]


def test_the_docs_have_samples_to_check() -> None:
    assert ALL_BLOCKS, "no ```python blocks found under docs/"
    assert RUNNABLE, "no page is checked as a runnable program"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: f"{b.page}:{b.line}")
def test_every_sample_compiles(block: Block) -> None:
    try:
        compile(
            block.code,
            f"docs/{block.page}:{block.line}",
            "exec",
            flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            dont_inherit=True,
        )
    except SyntaxError as exc:
        pytest.fail(f"docs/{block.page}, sample at line {block.line}: {exc}")


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(DOCS)))
def test_runnable_pages_run_as_written(page: Path, tmp_path: Path) -> None:
    parts = []
    for block in blocks(page):
        if not block.fragment:
            # Line markers make a traceback point at the page, not at the joined script.
            parts.append(f"# --- docs/{block.page}, line {block.line}\n{block.code}")
    script = tmp_path / "page.py"
    script.write_text("\n".join(parts), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (
        f"docs/{page.relative_to(DOCS)} did not run as written (fix it, or put "
        f"{FRAGMENT} before blocks that cannot run):\n{result.stdout}\n{result.stderr}"
    )

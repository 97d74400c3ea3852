"""The example transport is written against the public API only, as a user's would be."""

from __future__ import annotations

import ast
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "redis_streams"
PUBLIC = {"framework", "framework.transports"}


def test_the_redis_example_imports_only_public_framework_modules() -> None:
    imported: set[str] = set()
    for path in EXAMPLE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    framework_modules = {m for m in imported if m.split(".")[0] == "framework"}
    assert framework_modules, "the example uses the framework"
    assert framework_modules <= PUBLIC, framework_modules - PUBLIC

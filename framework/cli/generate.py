"""``framework generate <kind> <name>``: a file from a template, registered in a module.

The file is written next to the target module file as ``<name>_<kind>.py`` and the class
is imported and added to that module's ``imports``, ``controllers`` or ``providers``.
Nothing is written when the file exists or the module cannot be edited.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from framework.cli.errors import CliError, UsageError
from framework.cli.names import Names
from framework.cli.register import register
from framework.cli.templates import COMPONENTS

KINDS = tuple(COMPONENTS)
_SKIP_DIRS = {"venv", "node_modules", "build", "dist", "tests", "__pycache__"}


def find_root_module(cwd: Path, *, max_depth: int = 4) -> Path:
    """The project's ``app_module.py`` under ``cwd`` (NestJS's ``app.module.ts``),
    looking at most ``max_depth`` folders down and skipping hidden and tool folders."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(cwd):
        depth = len(Path(folder).relative_to(cwd).parts)
        dirs[:] = (
            []
            if depth >= max_depth
            else sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        )
        if "app_module.py" in files:
            found.append(Path(folder) / "app_module.py")
    if len(found) != 1:
        seen = ", ".join(str(p.relative_to(cwd)) for p in found) or "none"
        raise UsageError(
            f"Cannot tell which module to register in (app_module.py files found: {seen}); "
            "pass --module path/to/module.py"
        )
    return found[0]


def dotted_name(path: Path) -> str:
    """The import name of the Python file ``path``, from the packages around it."""
    parts = [path.stem]
    folder = path.parent.resolve()
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def line_length(path: Path, default: int = 88) -> int:
    """The line length ruff (or black) uses for ``path``, from the nearest pyproject.toml."""
    for folder in path.resolve().parents:
        config = folder / "pyproject.toml"
        if config.is_file():
            try:
                tool = tomllib.loads(config.read_text()).get("tool", {})
            except tomllib.TOMLDecodeError:
                return default
            for name in ("ruff", "black"):
                value = tool.get(name, {}).get("line-length")
                if isinstance(value, int):
                    return value
            return default
    return default


def _target(module: str | None, cwd: Path) -> tuple[Path, str | None]:
    if module is None:
        return find_root_module(cwd), None
    path_text, _, owner = module.partition(":")
    path = (cwd / path_text).resolve()
    if path.suffix != ".py" or not path.is_file():
        raise UsageError(f"--module {path_text!r} is not a Python file")
    return path, owner or None


def generate(kind: str, name: str, *, module: str | None = None, cwd: Path | None = None) -> int:
    """Write the ``kind`` file for ``name`` and register it; returns the exit code.

    Args:
        kind: one of ``KINDS``.
        name: the component's name in any case style (``users``, ``user-profile``).
        module: the module file to register in, optionally ``path.py:ClassName``;
            ``None`` looks for the one ``app_module.py`` under ``cwd``.
        cwd: the folder paths are relative to (the current directory by default).
    """
    cwd = cwd or Path.cwd()
    names = Names.parse(name)
    template, field = COMPONENTS[kind]
    target, owner = _target(module, cwd)
    out = target.parent / f"{names.snake}_{kind}.py"
    shown = out.relative_to(cwd) if out.is_relative_to(cwd) else out
    if out.exists():
        raise CliError(f"{shown} already exists; choose another name or remove it first")
    class_name = f"{names.pascal}{kind.capitalize()}"
    package = dotted_name(target).rpartition(".")[0]
    import_from = f"{package}.{out.stem}" if package else out.stem
    edited, owner_name = register(
        target.read_text(),
        field=field,
        name=class_name,
        import_from=import_from,
        owner=owner,
        line_length=line_length(target),
    )
    out.write_text(names.render(template))
    target.write_text(edited)
    where = target.relative_to(cwd) if target.is_relative_to(cwd) else target
    print(f"created {shown}")
    print(f"updated {where}: {class_name} added to {owner_name}'s {field}")
    return 0


def command(args: Any) -> int:
    """``framework generate`` from parsed arguments."""
    return generate(args.kind, args.name, module=args.module)

"""Add a class to a ``@module(...)`` list in a module file, by a minimal text edit.

``ast`` finds the exact positions (the decorator call, the keyword, the list's last
element, the imports); only the new text is inserted, so the file keeps its formatting,
comments and trailing-comma style. A one-line list or call that would grow past the line
length is laid out one item per line, as ruff format (or black) would.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from framework.cli.errors import CliError

_FRAMEWORK_MODULES = ("framework", "framework.di", "framework.di.metadata")

Node = ast.expr | ast.keyword


@dataclass(frozen=True, slots=True)
class _Edit:
    start: int
    end: int
    text: str


class _Source:
    """Source text with ``ast`` (line, UTF-8 byte column) positions turned into offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._lines = text.splitlines(keepends=True)
        self._starts = [0]
        for line in self._lines:
            self._starts.append(self._starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        line = self._lines[lineno - 1] if lineno <= len(self._lines) else ""
        return self._starts[lineno - 1] + len(line.encode()[:col].decode())

    def start(self, node: Node) -> int:
        return self.offset(node.lineno, node.col_offset)

    def end(self, node: Node) -> int:
        assert node.end_lineno is not None and node.end_col_offset is not None
        return self.offset(node.end_lineno, node.end_col_offset)

    def lineno_at(self, offset: int) -> int:
        return self.text.count("\n", 0, offset) + 1

    def line_start(self, lineno: int) -> int:
        return self._starts[lineno - 1]

    def line_end(self, lineno: int) -> int:
        """The offset of the newline ending line ``lineno`` (comments stay on their line)."""
        return self._starts[lineno - 1] + len(self._lines[lineno - 1].rstrip("\r\n"))

    def indent(self, lineno: int) -> str:
        line = self._lines[lineno - 1]
        return line[: len(line) - len(line.lstrip())]

    def segment(self, node: Node) -> str:
        return self.text[self.start(node) : self.end(node)]


def _decorator_names(tree: ast.Module) -> set[str]:
    """Local names bound to ``framework.module`` (``module`` unless imported as another)."""
    names = {"module"}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module in _FRAMEWORK_MODULES:
            names.update(a.asname for a in node.names if a.name == "module" and a.asname)
    return names


def module_calls(tree: ast.Module) -> list[tuple[str, ast.Call]]:
    """``(class name, @module(...) call)`` for every module class at the top level."""
    names = _decorator_names(tree)
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for dec in node.decorator_list:
            if not isinstance(dec, ast.Call):
                continue
            func = dec.func
            if (isinstance(func, ast.Name) and func.id in names) or (
                isinstance(func, ast.Attribute) and func.attr == "module"
            ):
                found.append((node.name, dec))
    return found


def _append(
    src: _Source, items: list[Node], open_at: int, close_at: int, new: str, limit: int
) -> _Edit:
    """Add ``new`` after the last of ``items``, in brackets at ``open_at``..``close_at``."""
    close_line = src.lineno_at(close_at)
    if src.lineno_at(open_at) == close_line:
        grown = src.line_end(close_line) - src.line_start(close_line) + len(new) + 2
        if grown <= limit:
            return _Edit(close_at, close_at, f", {new}" if items else new)
        # Too long for one line: one item per line, with a trailing comma.
        indent = src.indent(close_line)
        lines = [f"{indent}    {part}," for part in [*map(src.segment, items), new]]
        return _Edit(open_at + 1, close_at, "\n" + "\n".join(lines) + f"\n{indent}")
    if not items:
        return _Edit(close_at, close_at, new)
    last = items[-1]
    end = src.end(last)
    if last.end_lineno == close_line:  # `A,\n    B]`: the bracket closes on B's line
        return _Edit(end, end, f", {new}")
    comma = src.text.find(",", end, close_at)
    if comma != -1 and not src.text[end:comma].strip():
        # Multi-line with trailing commas: a new line in the same style.
        at = src.line_end(src.lineno_at(comma))
        return _Edit(at, at, f"\n{src.indent(last.lineno)}{new},")
    return _Edit(end, end, f",\n{src.indent(last.lineno)}{new}")


def _brackets(items: list[str], is_tuple: bool) -> tuple[str, str]:
    if is_tuple:
        return "(", ",)" if len(items) == 1 else ")"
    return "[", "]"


def _one_line_call(
    src: _Source, call: ast.Call, target: ast.keyword | None, field: str, name: str, limit: int
) -> _Edit:
    """Rewrite a one-line ``@module(...)`` call with ``name`` added, wrapping it (and then
    the list) one item per line when it grows past ``limit``."""
    open_at = src.text.index("(", src.end(call.func))
    close_at = src.end(call) - 1
    lineno = call.lineno
    lists: dict[int, tuple[list[str], bool]] = {}
    parts: list[str] = []
    nodes: list[Node] = [*call.args, *call.keywords]
    for node in sorted(nodes, key=lambda n: n.col_offset):
        if node is target:
            assert isinstance(target.value, (ast.List, ast.Tuple))
            elems = [src.segment(e) for e in target.value.elts] + [name]
            lists[len(parts)] = (elems, isinstance(target.value, ast.Tuple))
            parts.append("")
        else:
            parts.append(src.segment(node))
    if target is None:
        lists[len(parts)] = ([name], False)
        parts.append("")
    for i, (elems, is_tuple) in lists.items():
        left, right = _brackets(elems, is_tuple)
        parts[i] = f"{field}={left}{', '.join(elems)}{right}"
    flat = "(" + ", ".join(parts) + ")"
    before = open_at - src.line_start(lineno)
    after = src.line_end(lineno) - close_at - 1
    if before + len(flat) + after <= limit:
        return _Edit(open_at, close_at + 1, flat)
    indent = src.indent(lineno)
    lines = []
    for i, part in enumerate(parts):
        if i in lists and len(indent) + 5 + len(part) > limit:
            elems, is_tuple = lists[i]
            left, right = _brackets(elems, is_tuple)
            inner = "".join(f"{indent}        {e},\n" for e in elems)
            part = f"{field}={left}\n{inner}{indent}    {right.lstrip(',')}"
        lines.append(f"{indent}    {part},")
    return _Edit(open_at, close_at + 1, "(\n" + "\n".join(lines) + f"\n{indent})")


def _list_edit(
    src: _Source, call: ast.Call, owner: str, field: str, name: str, limit: int
) -> _Edit:
    target = next((kw for kw in call.keywords if kw.arg == field), None)
    value = target.value if target is not None else None
    is_tuple = isinstance(value, ast.Tuple) and src.text[src.start(value)] == "("
    if target is not None and not (isinstance(value, ast.List) or is_tuple):
        raise CliError(
            f"{field}= of {owner} is not a list literal; add {name} to it by hand "
            "(nothing was written)"
        )
    if call.lineno == call.end_lineno:
        return _one_line_call(src, call, target, field, name, limit)
    if isinstance(value, (ast.List, ast.Tuple)):
        items: list[Node] = list(value.elts)
        new = name + ("," if is_tuple and not items else "")
        return _append(src, items, src.start(value), src.end(value) - 1, new, limit)
    arguments: list[Node] = [*call.args, *call.keywords]
    arguments.sort(key=lambda n: (n.lineno, n.col_offset))
    open_at = src.text.index("(", src.end(call.func))
    return _append(src, arguments, open_at, src.end(call) - 1, f"{field}=[{name}]", limit)


def _import_edit(src: _Source, tree: ast.Module, module: str, name: str) -> _Edit:
    """``from module import name``, in sorted place among the same package's imports."""
    statement = f"from {module} import {name}"
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    top = module.split(".")[0]
    group = [
        n
        for n in imports
        if isinstance(n, ast.ImportFrom) and n.level == 0 and (n.module or "").split(".")[0] == top
    ]
    for node in group:
        if (node.module or "").lower() > module.lower():
            at = src.line_start(node.lineno)
            return _Edit(at, at, f"{statement}\n")
    if group or imports:
        last = (group or imports)[-1]
        assert last.end_lineno is not None
        at = src.line_end(last.end_lineno)
        return _Edit(at, at, f"\n{statement}" if group else f"\n\n{statement}")
    first = tree.body[0] if tree.body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
        and first.end_lineno is not None
    ):
        at = src.line_end(first.end_lineno)
        return _Edit(at, at, f"\n\n{statement}")
    return _Edit(0, 0, f"{statement}\n\n")


def register(
    text: str,
    *,
    field: str,
    name: str,
    import_from: str,
    owner: str | None = None,
    line_length: int = 88,
) -> tuple[str, str]:
    """Import ``name`` from ``import_from`` and add it to ``field`` of a ``@module(...)``.

    Args:
        text: the module file's source.
        field: ``imports``, ``controllers`` or ``providers``.
        name: the class to add.
        import_from: the dotted module to import ``name`` from.
        owner: the module class to edit; ``None`` means the only one in the file.
        line_length: the longest line, in characters, a one-line list may grow to.

    Returns:
        The new source and the name of the module class edited.

    Raises:
        CliError: the file has no (or several) ``@module`` classes, or the list is not a
            literal this can edit.
    """
    tree = ast.parse(text)
    calls = module_calls(tree)
    if owner is not None:
        calls = [c for c in calls if c[0] == owner]
    if len(calls) != 1:
        found = ", ".join(c[0] for c in module_calls(tree)) or "none"
        named = f" named {owner}" if owner else ""
        raise CliError(
            f"Expected one @module(...) class{named} in the file, found: {found}; "
            "pass --module path/to/file.py:ClassName"
        )
    cls_name, call = calls[0]
    src = _Source(text)
    edits = [
        _import_edit(src, tree, import_from, name),
        _list_edit(src, call, cls_name, field, name, line_length),
    ]
    out = text
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        out = out[: edit.start] + edit.text + out[edit.end :]
    ast.parse(out)  # the edit must leave valid Python
    return out, cls_name

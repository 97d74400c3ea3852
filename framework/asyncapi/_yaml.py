"""A small YAML emitter for JSON-compatible data (no dependency).

Output is block style with two-space indents. A string is written plain only when no
YAML reader could take it for anything else (a bool, null, a number, a comment, an
indicator); otherwise it is double-quoted with escapes, which YAML 1.1 and 1.2 readers
agree on. ``yaml.safe_load(to_yaml(data)) == data`` for dicts, lists, strings, ints,
floats, bools and ``None``.
"""

from __future__ import annotations

import math
import re
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_$/][A-Za-z0-9_$./-]*\Z")
# Words YAML 1.1 readers (PyYAML) turn into bools or null when plain.
_RESERVED = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])
# Characters a double-quoted scalar must escape: controls, DEL and C1 controls, the
# Unicode line/paragraph separators (YAML line breaks) and the byte order mark.
_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT.get(char) or f"\\u{ord(char):04x}"


def _string(text: str) -> str:
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return '"' + _ESCAPE.sub(_escape, text) + '"'


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    # YAML 1.1 floats need a dot in the mantissa ("1e-05" would read as a string).
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (e + exponent if e else "")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list | tuple) and not value:
        return "[]"
    raise TypeError(f"Cannot write {type(value).__name__} as YAML; use JSON-compatible data")


def _is_block(value: Any) -> bool:
    return isinstance(value, dict | list | tuple) and bool(value)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"YAML mapping keys must be strings here, not {key!r}")
            if _is_block(item):
                out.append(f"{pad}{_string(key)}:")
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{pad}{_string(key)}: {_scalar(item)}")
        return out
    for item in value:
        if _is_block(item):
            inner = _lines(item, indent + 2)
            # "- " takes the place of the nested block's indent on its first line.
            out.append(f"{pad}- {inner[0][indent + 2 :]}")
            out.extend(inner[1:])
        else:
            out.append(f"{pad}- {_scalar(item)}")
    return out


def to_yaml(data: Any) -> str:
    """``data`` (dicts with string keys, lists, strings, numbers, bools, ``None``) as YAML.

    Raises:
        TypeError: ``data`` holds something JSON could not hold either.
    """
    if not _is_block(data):
        return _scalar(data) + "\n"
    return "\n".join(_lines(data, 0)) + "\n"

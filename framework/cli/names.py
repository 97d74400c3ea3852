"""Names for generated code: ``user-profile`` -> ``user_profile``, ``UserProfile``..."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from framework.cli.errors import UsageError

_WORDS = re.compile(r"[A-Z]+[0-9]*(?![a-z])|[A-Z]?[a-z]+[0-9]*|[0-9]+")


@dataclass(frozen=True, slots=True)
class Names:
    """The spellings of one name.

    Attributes:
        snake: ``user_profile`` (files, Python packages, patterns).
        kebab: ``user-profile`` (HTTP paths, project folders).
        pascal: ``UserProfile`` (classes).
    """

    snake: str
    kebab: str
    pascal: str

    @classmethod
    def parse(cls, raw: str) -> Names:
        """Split ``raw`` (any of snake, kebab, camel or Pascal case) into words."""
        words = [w.lower() for w in _WORDS.findall(raw)]
        leftover = _WORDS.sub("", raw).strip("-_ ")
        if not words or leftover.replace("-", "").replace("_", "").replace(" ", ""):
            raise UsageError(
                f"{raw!r} is not a usable name: use letters and digits, words separated by "
                "- or _ (for example users or user-profile)"
            )
        snake = "_".join(words)
        if not snake.isidentifier() or keyword.iskeyword(snake):
            raise UsageError(f"{raw!r} gives {snake!r}, which is not a Python identifier")
        return cls(snake, "-".join(words), "".join(w.capitalize() for w in words))

    def render(self, template: str, **extra: str) -> str:
        """``template`` with ``{{snake}}``, ``{{kebab}}``, ``{{pascal}}`` and ``extra`` filled."""
        values = {"snake": self.snake, "kebab": self.kebab, "pascal": self.pascal, **extra}
        for key, value in values.items():
            template = template.replace("{{" + key + "}}", value)
        return template

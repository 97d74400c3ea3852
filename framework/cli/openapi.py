"""``framework openapi module:attr``: the OpenAPI 3.1 document of the app's HTTP routes.

Built like ``framework routes`` (``Application.describe``): no hook runs, nothing connects.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from framework.cli.errors import CliError, UsageError, UserCodeError
from framework.cli.loader import load_app
from framework.exceptions import ConfigurationError
from framework.http import build_openapi


def command(args: Any) -> int:
    """``framework openapi`` from parsed arguments."""
    app = load_app(args.target, args.app_dir)
    try:
        doc = asyncio.run(
            build_openapi(
                app,
                title=args.title,
                version=args.api_version,
                description=args.description,
                servers=args.server or (),
            )
        )
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        raise UserCodeError("Building the app failed", exc) from None
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        print(text, end="")
        return 0
    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"--output {args.output!r} is a directory; name a file")
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"Cannot write {args.output!r}: {exc.strerror or exc}") from None
    return 0

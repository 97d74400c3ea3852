"""The ``framework`` command: run, routes, asyncapi, openapi, new, generate, kafka.

Exit codes: 0 success, 1 an error in the app (import, wiring, start-up), 2 a usage error.

Environment defaults (the command line wins): ``FRAMEWORK_APP`` for the target,
``FRAMEWORK_HOST`` and ``FRAMEWORK_PORT`` for ``run`` and ``asyncapi serve``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from framework import __version__
from framework.cli import errors

__all__ = ["main"]


def _kafka(args: Any) -> int:
    from framework.testing.kafka import main as kafka_main

    return kafka_main(args.broker_args)


def _kafka_fetch(args: Any) -> int:
    from framework.testing.kafka.cli import fetch

    return fetch(args.broker_args)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0-65535)")
    return value


_APP_ENV = "FRAMEWORK_APP"
_HOST_ENV = "FRAMEWORK_HOST"
_PORT_ENV = "FRAMEWORK_PORT"


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        nargs="?",
        default=os.environ.get(_APP_ENV) or None,
        help="module:attribute of an Application or a @module class (e.g. example_app.main:app;"
        f" default: ${_APP_ENV})",
    )
    parser.add_argument(
        "--app-dir", default=".", help="folder to import the target from (default: .)"
    )


def _add_address(parser: argparse.ArgumentParser, what: str = "") -> None:
    parser.add_argument(
        "--host", default=None, help=f"{what}listen address (default: ${_HOST_ENV} or 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=None, help=f"{what}TCP port (default: ${_PORT_ENV} or 8000)"
    )


def _resolve_address(args: Any) -> None:
    """``--host``/``--port`` not given: ``$FRAMEWORK_HOST``/``$FRAMEWORK_PORT``, else the
    defaults; a bad variable is a usage error that names it."""
    if not hasattr(args, "port"):
        return
    if args.host is None:
        args.host = os.environ.get(_HOST_ENV) or "127.0.0.1"
    if args.port is None:
        raw = os.environ.get(_PORT_ENV) or "8000"
        try:
            args.port = _port(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            detail = exc if isinstance(exc, argparse.ArgumentTypeError) else "not a number"
            raise errors.UsageError(f"${_PORT_ENV}={raw!r}: {detail}") from None


def _resolve_target(args: Any) -> None:
    """Fill ``args.target`` from ``asyncapi serve`` and ``$FRAMEWORK_APP``; refuse none."""
    if not hasattr(args, "target"):
        return
    if args.command == "asyncapi":
        args.serve = args.target == "serve"
        if args.serve:
            args.target = args.serve_target or os.environ.get(_APP_ENV) or None
        elif args.serve_target is not None:
            raise errors.UsageError(
                f"unexpected argument {args.serve_target!r}; did you mean "
                f"`framework asyncapi serve {args.serve_target}`?"
            )
    if args.target is None:
        raise errors.UsageError(
            f"name the app: `framework {args.command} module:attribute` (for example "
            f"example_app.main:app), or set ${_APP_ENV}"
        )


def _build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    from framework.cli import asyncapi, generate, openapi, routes, run, scaffold

    parser = argparse.ArgumentParser(
        prog="framework",
        description="Run, inspect and scaffold apps built with the framework.",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="on errors, print every traceback frame"
    )
    parser.add_argument("--version", action="version", version=f"framework {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("run", help="serve an app with uvicorn")
    _add_target(p)
    _add_address(p)
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--reload", action="store_true", help="restart when a .py file changes")
    scale.add_argument("--workers", type=_positive, default=1, help="worker processes (default: 1)")
    p.add_argument("--log-level", default="info", choices=run.LOG_LEVELS, help="(default: info)")
    p.add_argument(
        "--loop",
        default="auto",
        choices=run.LOOPS,
        help="event loop (default: auto, uvloop when installed)",
    )
    p.set_defaults(handler=run.command)

    p = commands.add_parser("routes", help="list HTTP routes, endpoints and message patterns")
    _add_target(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(handler=routes.command)

    p = commands.add_parser(
        "asyncapi",
        help="print the app's AsyncAPI 3.0.0 document (`asyncapi serve TARGET`: serve it)",
        usage="framework asyncapi [serve] [TARGET] [options]",
    )
    _add_target(p)
    # `framework asyncapi serve TARGET`: the first word is then "serve", the second the app.
    p.add_argument("serve_target", nargs="?", default=None, help=argparse.SUPPRESS)
    _add_address(p, what="with `serve`: ")
    p.add_argument(
        "--format",
        choices=asyncapi.FORMATS,
        default=None,
        help="json or yaml (default: yaml for an --output ending in .yaml/.yml, else json)",
    )
    p.add_argument("--output", "-o", default=None, help="write to this file (default: stdout)")
    p.add_argument("--title", default=None, help="info.title (default: the root module's name)")
    p.add_argument("--api-version", default="1.0.0", help="info.version (default: 1.0.0)")
    p.add_argument("--description", default=None, help="info.description")
    p.add_argument(
        "--http-host",
        default="localhost:8000",
        help="host:port of the HTTP server, for WebSocket and SSE (default: localhost:8000)",
    )
    p.add_argument("--secure", action="store_true", help="wss/https instead of ws/http")
    p.add_argument(
        "--transport",
        action="append",
        default=None,
        metavar="NAME",
        help="document only this transport (repeatable; default: all)",
    )
    p.set_defaults(handler=asyncapi.command)

    p = commands.add_parser("openapi", help="print the OpenAPI 3.1 document of the HTTP routes")
    _add_target(p)
    p.add_argument("--output", "-o", default=None, help="write to this file (default: stdout)")
    p.add_argument("--title", default=None, help="info.title (default: the root module's name)")
    p.add_argument("--api-version", default="1.0.0", help="info.version (default: 1.0.0)")
    p.add_argument("--description", default=None, help="info.description")
    p.add_argument("--server", action="append", default=None, metavar="URL", help="a servers[] URL")
    p.set_defaults(handler=openapi.command)

    p = commands.add_parser("new", help="create a new project folder")
    p.add_argument("name", help="project folder (its last part names the package)")
    p.add_argument(
        "--framework-requirement",
        default=None,
        help="the framework dependency for pyproject.toml (default: this checkout)",
    )
    p.set_defaults(handler=scaffold.command)

    p = commands.add_parser("generate", aliases=["g"], help="add a component to a module")
    p.add_argument("kind", choices=generate.KINDS)
    p.add_argument("name", help="component name, e.g. users or user-profile")
    p.add_argument(
        "--module",
        default=None,
        help="module file to register in, path.py or path.py:Class (default: app_module.py)",
    )
    p.set_defaults(handler=generate.command)

    p = commands.add_parser("kafka", help="local Apache Kafka for development")
    kafka = p.add_subparsers(dest="kafka_command", required=True, metavar="COMMAND")
    # Its options (--port, --host, --startup-timeout, --heap, --help) go to the broker's
    # own parser, so they are documented in one place.
    start = kafka.add_parser("start", help="start a broker until Ctrl-C", add_help=False)
    start.set_defaults(handler=_kafka)
    fetch = kafka.add_parser(
        "fetch", help="download the broker jars now (for image builds)", add_help=False
    )
    fetch.set_defaults(handler=_kafka_fetch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``framework`` command; returns the process exit code.

    Args:
        argv: the arguments without the program name; ``None`` reads ``sys.argv``.
    """
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.handler in (_kafka, _kafka_fetch):
        args.broker_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        _resolve_target(args)
        _resolve_address(args)
        code: int = args.handler(args)
    except errors.CliError as exc:
        return errors.report(exc, full_traceback=args.traceback)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code

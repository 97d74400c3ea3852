"""``framework run module:attr``: serve an app with uvicorn.

One process (the default): the app starts *before* the port opens, so a wiring error is
one clear message and no server ever listens half-built; SIGINT or SIGTERM closes the
server, then the app shuts down gracefully (transports drain), and the exit code is 0.

``--reload`` and ``--workers N`` hand uvicorn an import string (``app_factory`` below,
told the target through the environment): each worker process imports and starts the
app itself, through the ASGI lifespan, and uvicorn reports errors in those processes.
The transports' WebSocket paths are served on picows there too: uvicorn gets the
``ws`` protocol by import string and each process serves its own app's routes
(``framework.transports.websocket._uvicorn.ProcessUpgrade``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from framework.application import Application
from framework.cli.errors import CliError, UserCodeError
from framework.cli.loader import load_app
from framework.exceptions import ConfigurationError

TARGET_ENV = "FRAMEWORK_APP"
"""The ``module:attr`` that ``app_factory`` loads in reload/worker processes."""
APP_DIR_ENV = "FRAMEWORK_APP_DIR"
LOG_LEVEL_ENV = "FRAMEWORK_LOG_LEVEL"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOOPS = ("auto", "asyncio", "uvloop")
"""``--loop``: uvicorn's names; ``auto`` is uvloop when it is installed, else asyncio."""
UVICORN_WS = "websockets-sansio"
"""uvicorn's WebSocket implementation, as ``Application.server`` chooses it."""


class _Formatter(logging.Formatter):
    """``INFO:     name: message``, aligned with uvicorn's own lines."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname + ':':<9} {record.name}: {super().format(record)}"


def configure_logging(level: str) -> None:
    """Show the app's log records (the ``framework`` logger and the user's) on stderr,
    unless the app configured logging itself."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter())
    root.addHandler(handler)
    root.setLevel(level.upper())


def app_factory() -> Application:
    """The app named by ``$FRAMEWORK_APP``, for uvicorn's ``factory=True`` in reload and
    worker processes."""
    from framework.transports.websocket._uvicorn import routes_of, serve_routes

    configure_logging(os.environ.get(LOG_LEVEL_ENV, "info"))
    app = load_app(os.environ[TARGET_ENV], os.environ.get(APP_DIR_ENV, "."))
    # This process's app: its transports' WebSocket paths on picows (``ProcessUpgrade``).
    serve_routes(routes_of(app.transports))
    return app


def run(
    target: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    reload: bool = False,
    workers: int = 1,
    log_level: str = "info",
    app_dir: str = ".",
    loop: str = "auto",
) -> int:
    """Serve ``target`` until SIGINT/SIGTERM; returns the exit code.

    Args:
        target: ``module:attr`` naming an ``Application`` or a ``@module`` class.
        host: the address to listen on.
        port: the TCP port to listen on.
        reload: restart the server when a ``.py`` file under ``app_dir`` changes.
        workers: processes sharing the port (each runs its own copy of the app).
        log_level: uvicorn's and the app's log level.
        app_dir: the folder put first on ``sys.path`` to import ``target`` from.
        loop: the event loop: ``auto`` (uvloop when installed, else asyncio's),
            ``asyncio`` or ``uvloop``.
    """
    app = load_app(target, app_dir)  # fail here, with one clear message, not in a worker
    configure_logging(log_level)
    if reload or workers > 1:
        return _run_import_string(
            app, target, host, port, reload, workers, log_level, app_dir, loop
        )
    # The app starts and stops in _serve, around the server, so no lifespan.
    server = app.server(host, port, lifespan="off", log_level=log_level, loop=loop)
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        return runner.run(_serve(app, server))


def _run_import_string(
    app: Application,
    target: str,
    host: str,
    port: int,
    reload: bool,
    workers: int,
    log_level: str,
    app_dir: str,
    loop: str,
) -> int:
    import uvicorn

    from framework.http._server import HeaderTimeoutProtocol
    from framework.transports.websocket._uvicorn import PROCESS_UPGRADE, routes_of

    # Worker processes get the default header timeout (``Application.server`` sets it).
    options: dict[str, Any] = {"ws": UVICORN_WS, "http": HeaderTimeoutProtocol, "loop": loop}
    for transport in app.transports:
        options.update(transport.server_options())
    if routes_of(app.transports):
        # Each process builds its own app and serves its routes on picows.
        options["ws"] = PROCESS_UPGRADE
    os.environ[TARGET_ENV] = target
    os.environ[APP_DIR_ENV] = str(Path(app_dir).resolve())
    os.environ[LOG_LEVEL_ENV] = log_level
    uvicorn.run(
        f"{__name__}:app_factory",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        reload_dirs=[str(Path(app_dir).resolve())] if reload else None,
        workers=None if reload else workers,
        log_level=log_level,
        **options,
    )
    return 0


async def _serve(app: Application, server: Any) -> int:
    received: list[int] = []
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # uvicorn handles signals while it serves and raises them again when it is done;
        # before and after that we only note them. A second one while the app shuts
        # down means "stop waiting".
        if stopping:
            raise KeyboardInterrupt
        received.append(signum)
        server.should_exit = True

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
    try:
        await app.start()
    except Exception as exc:
        # A hook may fail after transports started: stop what did (no-op if nothing).
        with contextlib.suppress(Exception):
            await app.stop()
        if isinstance(exc, ConfigurationError):
            raise CliError(str(exc)) from None
        raise UserCodeError("The app failed to start", exc) from None
    code = 0
    try:
        if not received:
            await server.serve()
    except SystemExit as exc:  # uvicorn exits (after logging why) when it cannot bind
        code = 1 if exc.code else 0
    finally:
        stopping = True
        name = signal.Signals(received[0]).name if received else None
        await app.stop(name)
    return 1 if app.failure is not None else code


def _options(args: Any) -> dict[str, Any]:
    return {
        "host": args.host,
        "port": args.port,
        "reload": args.reload,
        "workers": args.workers,
        "log_level": args.log_level,
        "app_dir": args.app_dir,
        "loop": args.loop,
    }


def command(args: Any) -> int:
    """``framework run`` from parsed arguments."""
    return run(args.target, **_options(args))

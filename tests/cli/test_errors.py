"""Mistakes in a user's app: one clear line on stderr, no traceback wall, exit 1 (2 for
usage errors)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.cli.helpers import cli

MISSING_PROVIDER = """
from framework import controller, create_app, get, injectable, module


class Clock:
    pass


@injectable()
class Greeter:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock


@controller("/hello")
class HelloController:
    def __init__(self, greeter: Greeter) -> None:
        self.greeter = greeter

    @get()
    async def hello(self) -> str:
        return "hello"


@module(controllers=[HelloController], providers=[Greeter])
class AppModule:
    pass


app = create_app(AppModule)
"""

CYCLE = """
from framework import create_app, injectable, module


@injectable()
class Chicken:
    def __init__(self, egg: "Egg") -> None: ...


@injectable()
class Egg:
    def __init__(self, chicken: Chicken) -> None: ...


@module(providers=[Chicken, Egg])
class AppModule:
    pass


app = create_app(AppModule)
"""

CRASHING = """
def load_settings() -> dict[str, str]:
    raise RuntimeError("DATABASE_URL is not set")


settings = load_settings()
"""


def _write(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("command", ["routes", "run"])
def test_missing_provider_is_one_clear_line(tmp_path: Path, command: str) -> None:
    _write(tmp_path, "brokenapp", MISSING_PROVIDER)
    options = ["--port", "0"] if command == "run" else []
    result = cli(command, "brokenapp:app", *options, cwd=tmp_path)
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert "Greeter" in line and "Clock" in line and "AppModule" in line
    assert "Uvicorn running" not in result.stderr  # nothing listened


def test_dependency_cycle_is_one_clear_line(tmp_path: Path) -> None:
    _write(tmp_path, "cycleapp", CYCLE)
    result = cli("routes", "cycleapp:app", cwd=tmp_path)
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert "cycle" in line and "Chicken" in line and "Egg" in line


def test_bad_import_path(tmp_path: Path) -> None:
    result = cli("routes", "no_such_package.main:app", cwd=tmp_path)
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert "Cannot import 'no_such_package.main'" in line and "--app-dir" in line


def test_missing_attribute_names_the_candidates() -> None:
    result = cli("routes", "example_app.main:application")
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert "no attribute 'application'" in line and "example_app.main:app" in line


def test_attribute_that_is_not_an_app() -> None:
    result = cli("routes", "example_app.main:build_app")
    assert result.returncode == 1
    assert "not an Application or a @module class" in _one_error_line(result.stderr)


def test_malformed_target_is_a_usage_error() -> None:
    result = cli("routes", "example_app.main")
    assert result.returncode == 2
    assert "<module>:<attribute>" in _one_error_line(result.stderr)


def test_unknown_command_is_a_usage_error() -> None:
    result = cli("serve", "example_app.main:app")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_exception_in_user_code_shows_only_the_users_frames(tmp_path: Path) -> None:
    _write(tmp_path, "crashing", CRASHING)
    result = cli("run", "crashing:app", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        "error: Importing 'crashing' failed: RuntimeError: DATABASE_URL is not set"
    )
    assert "crashing.py" in result.stderr and "load_settings" in result.stderr
    assert "importlib" not in result.stderr and "framework/cli" not in result.stderr
    full = cli("--traceback", "run", "crashing:app", cwd=tmp_path)
    assert "framework/cli" in full.stderr  # every frame, on request


FAILING_HOOK = """
from framework import create_app, injectable, module


@injectable()
class Database:
    async def on_module_init(self) -> None:
        raise ConnectionError("database at db:5432 refused the connection")


@module(providers=[Database])
class AppModule:
    pass


app = create_app(AppModule)
"""


def test_failing_startup_hook_is_reported_with_the_users_frame(tmp_path: Path) -> None:
    _write(tmp_path, "hookapp", FAILING_HOOK)
    result = cli("run", "hookapp:app", "--port", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: The app failed to start: ConnectionError: database at db:5432 refused the "
        "connection"
    )
    assert 'hookapp.py", line 8, in on_module_init' in result.stderr
    assert "Uvicorn running" not in result.stderr

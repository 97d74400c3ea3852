"""``framework new``: the generated project passes its own tests and serves at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from framework.cli.scaffold import framework_requirement
from tests.cli.helpers import COMMAND_TIMEOUT_S, REPO_ROOT, cli, env


def _new(tmp_path: Path, name: str = "demo-svc") -> Path:
    result = cli("new", name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "make test" in result.stdout
    return tmp_path / name


def test_new_project_passes_its_own_tests(tmp_path: Path) -> None:
    project = _new(tmp_path)
    # This venv's python stands in for the project's own venv (`make test` installs the
    # same packages); PYTHONPATH puts the project first, as an editable install would.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env(pythonpath=project),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_new_project_layout_and_dependency(tmp_path: Path) -> None:
    project = _new(tmp_path)
    package = project / "demo_svc"
    for path in ["Makefile", "README.md", "pyproject.toml", "tests/test_greetings.py"]:
        assert (project / path).is_file(), path
    assert (package / "app_module.py").is_file()
    pyproject = (project / "pyproject.toml").read_text()
    assert f'"framework[config] @ {REPO_ROOT.as_uri()}"' in pyproject
    assert framework_requirement() == f"framework[config] @ {REPO_ROOT.as_uri()}"
    makefile = (project / "Makefile").read_text()
    assert "\nrun: install\n\t" in makefile and "\ntest: install\n\t" in makefile
    readme = (project / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_new_project_app_builds_and_is_lint_clean(tmp_path: Path) -> None:
    project = _new(tmp_path)
    routes = cli("routes", "demo_svc.main:app", "--json", cwd=project)
    assert routes.returncode == 0, routes.stderr
    data = json.loads(routes.stdout)
    assert {
        "kind": "http",
        "method": "GET",
        "path": "/greetings/{name}",
        "handler": "GreetingsController.greet",
    } in data["http"]
    assert [(p["kind"], p["pattern"]) for p in data["patterns"]] == [("event", "greetings.sent")]
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "E,F,W,I,UP,B", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_new_refuses_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = cli("new", "taken", cwd=tmp_path)
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_new_refuses_a_name_that_shadows_a_module(tmp_path: Path) -> None:
    result = cli("new", "json", cwd=tmp_path)
    assert result.returncode == 2
    assert "shadow" in result.stderr
    assert not (tmp_path / "json").exists()

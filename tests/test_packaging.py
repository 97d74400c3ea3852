"""The distribution: ``python -m build`` makes a wheel and an sdist that install into a
clean virtualenv (uv, for speed) where the example app serves real HTTP requests.

About 15 s here: the build runs in build's isolated environment, and uv installs the
dependencies from its cache after the first run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from framework import __version__
from tests.cli.helpers import COMMAND_TIMEOUT_S, REPO_ROOT, Lines, kill

UV = Path(sys.executable).with_name("uv")


def _run(*args: str | Path, cwd: Path = REPO_ROOT) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S * 3,
        check=False,
        env=_clean_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (nothing from this checkout), no pytest or virtualenv variables."""
    skip = ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_")
    return {k: v for k, v in os.environ.items() if not k.startswith(skip)}


def _venv(path: Path, requirement: str) -> Path:
    _run(UV, "venv", "-q", "--python", sys.executable, path)
    python = path / "bin" / "python"
    _run(UV, "pip", "install", "-q", "--python", python, requirement)
    return python


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, REPO_ROOT)
    return out


def test_wheel_and_sdist_hold_what_users_need(dist: Path) -> None:
    wheel = dist / f"framework-{__version__}-py3-none-any.whl"
    sdist = dist / f"framework-{__version__}.tar.gz"
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        meta = whl.read(f"framework-{__version__}.dist-info/METADATA").decode()
    assert {"framework/py.typed", "framework/testing/kafka/pom.xml"} <= names
    assert not any(n.startswith(("tests/", "example_app/")) for n in names)
    assert f"Version: {__version__}" in meta and "License: MIT" in meta
    assert "Provides-Extra: config" in meta and "Provides-Extra: testing" in meta
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"LICENSE", "README.md", "pyproject.toml", "framework/py.typed"} <= members


def test_the_wheel_runs_the_example_app_in_a_clean_venv(dist: Path, tmp_path: Path) -> None:
    wheel = dist / f"framework-{__version__}-py3-none-any.whl"
    python = _venv(tmp_path / "venv", f"{wheel}[config]")
    # The example app from this checkout, run from elsewhere: only the wheel is importable.
    shutil.copytree(REPO_ROOT / "example_app", tmp_path / "app" / "example_app")
    where = _run(python, "-c", "import framework; print(framework.__file__)", cwd=tmp_path)
    assert where.startswith(str(tmp_path / "venv"))
    env = {**_clean_env(), "PORT": "0", "LOG_FORMAT": "text"}
    proc = subprocess.Popen(
        [python, "-m", "example_app"],
        cwd=tmp_path / "app",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        err = Lines(proc.stderr)
        base = err.wait_for(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", COMMAND_TIMEOUT_S)
        url = base.group(1)
        with httpx.Client(base_url=url, timeout=COMMAND_TIMEOUT_S) as http:
            created = http.post("/orders", json={"customer": "ann", "total": 3})
            assert created.status_code == 201
            assert http.get("/orders").json() == [created.json()]
        proc.send_signal(signal.SIGTERM)
        err.wait_for(r"Application shutdown complete", COMMAND_TIMEOUT_S)
        # uvicorn re-raises the signal once its graceful shutdown is done.
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) in (0, -signal.SIGTERM)
    finally:
        kill(proc)


def test_the_sdist_installs_and_runs_the_cli(dist: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv", str(dist / f"framework-{__version__}.tar.gz"))
    out = _run(python, "-m", "framework", "--version", cwd=tmp_path)
    assert out.strip() == f"framework {__version__}"


def test_dev_tools_are_a_dependency_group_and_the_test_extra_keeps_them() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    dev = [r for r in project["dependency-groups"]["dev"] if isinstance(r, str)]
    # pip < 25.1 cannot install groups, so CI's `.[test]` carries the same pins.
    assert set(dev) <= set(extras["test"]), "pin drift between [dependency-groups] and test"
    assert not set(dev) & set(extras["testing"]), "the user-facing extra holds dev tools"

"""``framework generate``: each kind writes its file, registers it, and the app builds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from framework.cli.generate import KINDS
from tests.cli.helpers import COMMAND_TIMEOUT_S, REPO_ROOT, cli

# kind -> (the @module list it joins, what `framework routes --json` then shows)
EXPECTED = {
    "module": ("imports", None),
    "controller": ("controllers", ("http", "/billing")),
    "service": ("providers", None),
    "gateway": ("providers", ("pattern", "billing.echo")),
    "guard": ("providers", None),
    "interceptor": ("providers", None),
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    result = cli("new", "shop", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "shop"


def _routes(project: Path) -> dict[str, list[dict[str, object]]]:
    result = cli("routes", "shop.main:app", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    data: dict[str, list[dict[str, object]]] = json.loads(result.stdout)
    return data


def test_every_kind_has_an_expectation() -> None:
    assert set(EXPECTED) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_generate_writes_registers_and_the_app_builds(project: Path, kind: str) -> None:
    result = cli("generate", kind, "billing", cwd=project)
    assert result.returncode == 0, result.stderr
    written = project / "shop" / f"billing_{kind}.py"
    assert written.is_file()
    class_name = f"Billing{kind.capitalize()}"
    assert f"class {class_name}" in written.read_text()

    module_source = (project / "shop" / "app_module.py").read_text()
    field, shows = EXPECTED[kind]
    assert f"from shop.billing_{kind} import {class_name}\n" in module_source
    registered = module_source.split(f"{field}=[", 1)[1].split("]", 1)[0]
    assert class_name in registered

    data = _routes(project)
    if shows == ("http", "/billing"):
        assert any(r["path"] == "/billing" for r in data["http"])
    elif shows is not None:
        assert any(p["pattern"] == shows[1] for p in data["patterns"])


def test_generate_refuses_an_existing_file(project: Path) -> None:
    assert cli("generate", "service", "billing", cwd=project).returncode == 0
    module_file = project / "shop" / "app_module.py"
    before = module_file.read_text()
    again = cli("g", "service", "billing", cwd=project)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "error: shop/billing_service.py already exists; choose another name or remove it first"
    )
    assert module_file.read_text() == before  # registered once


def test_generated_code_stays_lint_clean(project: Path) -> None:
    for kind in KINDS:
        assert cli("generate", kind, "user-profile", cwd=project).returncode == 0
    nested = cli(
        "generate", "controller", "admin", "--module", "shop/user_profile_module.py", cwd=project
    )
    assert nested.returncode == 0, nested.stderr
    assert "AdminController added to UserProfileModule's controllers" in nested.stdout
    data = _routes(project)
    assert {p["pattern"] for p in data["patterns"]} >= {"admin.ping", "user_profile.ping"}
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "E,F,W,I,UP,B", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout


def test_generate_into_a_nested_module_of_the_example_app(tmp_path: Path) -> None:
    shutil.copytree(
        REPO_ROOT / "example_app",
        tmp_path / "example_app",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    result = cli(
        "generate",
        "service",
        "orders-cache",
        "--module",
        "example_app/orders/module.py",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "example_app/orders/orders_cache_service.py").is_file()
    source = (tmp_path / "example_app/orders/module.py").read_text()
    assert "from example_app.orders.orders_cache_service import OrdersCacheService\n" in source
    assert "providers=[OrdersService, OrdersRepository, OrdersCacheService]" in source
    routes = cli("routes", "example_app.main:app", cwd=tmp_path)
    assert routes.returncode == 0, routes.stderr


def test_generate_without_a_root_module_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("generate", "service", "billing", cwd=tmp_path)
    assert result.returncode == 2
    assert "pass --module" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_generate_refuses_a_list_it_cannot_edit(tmp_path: Path) -> None:
    (tmp_path / "app_module.py").write_text(
        "from framework import module\n\nPROVIDERS: list[type] = []\n\n\n"
        "@module(providers=PROVIDERS)\nclass AppModule:\n    pass\n"
    )
    result = cli("generate", "service", "billing", cwd=tmp_path)
    assert result.returncode == 1
    assert "not a list literal" in result.stderr
    assert not (tmp_path / "billing_service.py").exists()

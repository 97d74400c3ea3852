"""``framework asyncapi``: the document on stdout or in a file, JSON or YAML."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.asyncapi.schema import schema_errors
from tests.cli.helpers import cli


def test_json_on_stdout_is_valid_asyncapi() -> None:
    result = cli("asyncapi", "example_app.main:app")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert schema_errors(doc) == []
    assert "orders.get" in {c["address"] for c in doc["channels"].values()}


def test_yaml_to_a_file_with_options(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"
    result = cli(
        "asyncapi",
        "tests.asyncapi.app:app",
        "--output",
        str(out),
        "--title",
        "Shop",
        "--api-version",
        "2.0.0",
        "--http-host",
        "shop.example:443",
        "--secure",
        "--transport",
        "ws",
        "--transport",
        "kafka",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))  # .yaml: YAML without --format
    assert schema_errors(doc) == []
    assert doc["info"] == {"title": "Shop", "version": "2.0.0"}
    assert set(doc["servers"]) == {"kafka", "ws", "ws-chat"}
    assert doc["servers"]["ws"]["host"] == "shop.example:443"
    assert doc["servers"]["ws"]["protocol"] == "wss"


def test_explicit_format_wins_over_the_file_name(tmp_path: Path) -> None:
    out = tmp_path / "doc.yaml"
    result = cli("asyncapi", "example_app.main:app", "--format", "json", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["asyncapi"] == "3.0.0"


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    unknown = cli("asyncapi", "example_app.main:app", "--transport", "mqtt")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines()[-1] == (
        "error: The app has no transport named mqtt; it has memory, ws, socketio, sse"
    )
    folder = cli("asyncapi", "example_app.main:app", "-o", str(tmp_path))
    assert folder.returncode == 2
    assert "is a directory" in folder.stderr
    missing = cli("asyncapi", "example_app.main:app", "-o", str(tmp_path / "no" / "doc.json"))
    assert missing.returncode == 1
    assert "Cannot write" in missing.stderr
    bad_format = cli("asyncapi", "example_app.main:app", "--format", "xml")
    assert bad_format.returncode == 2

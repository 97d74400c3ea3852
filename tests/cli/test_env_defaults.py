"""``FRAMEWORK_APP``, ``FRAMEWORK_HOST`` and ``FRAMEWORK_PORT`` as defaults (the command
line wins), and ``framework asyncapi serve``."""

from __future__ import annotations

import json
import signal

import httpx

from tests.cli.helpers import COMMAND_TIMEOUT_S, cli, kill, start

URL = r"Uvicorn running on (http://127\.0\.0\.1:\d+)"
APP = "example_app.main:app"


def test_run_takes_app_host_and_port_from_the_environment() -> None:
    env = {"FRAMEWORK_APP": APP, "FRAMEWORK_HOST": "127.0.0.1", "FRAMEWORK_PORT": "0"}
    proc, _, err = start("run", extra_env=env)
    try:
        base = err.wait_for(URL, COMMAND_TIMEOUT_S).group(1)
        assert httpx.get(f"{base}/orders").json() == []
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) == 0
    finally:
        kill(proc)


def test_the_command_line_wins_over_the_environment() -> None:
    result = cli("routes", APP, "--json", extra_env={"FRAMEWORK_APP": "nowhere:app"})
    assert result.returncode == 0, result.stderr
    assert "/orders" in result.stdout


def test_no_target_and_bad_variables_are_usage_errors() -> None:
    missing = cli("routes", extra_env={"FRAMEWORK_APP": ""})
    assert missing.returncode == 2
    assert "set $FRAMEWORK_APP" in missing.stderr
    bad = cli("run", APP, extra_env={"FRAMEWORK_PORT": "http"})
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: $FRAMEWORK_PORT='http': not a number"
    stray = cli("asyncapi", APP, "more")
    assert stray.returncode == 2 and "framework asyncapi serve more" in stray.stderr


def test_asyncapi_serve_serves_the_same_document_as_asyncapi() -> None:
    printed = cli("asyncapi", APP)
    assert printed.returncode == 0, printed.stderr
    proc, out, err = start("asyncapi", "serve", APP, "--port", "0")
    try:
        base = err.wait_for(URL, COMMAND_TIMEOUT_S).group(1)
        out.wait_for(r"Serving the AsyncAPI document of example_app\.main:app", 1)
        with httpx.Client(base_url=base) as http:
            assert http.get("/asyncapi.json").json() == json.loads(printed.stdout)
            page = http.get("/asyncapi")
            assert page.status_code == 200 and "orders.created" in page.text
            assert http.get("/asyncapi.yaml").text.startswith('asyncapi: "3.0.0"')
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=COMMAND_TIMEOUT_S) == 0
    finally:
        kill(proc)

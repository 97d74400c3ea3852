#!/usr/bin/env bash
# The core tests on the lowest versions pyproject.toml allows for the framework's direct
# dependencies (uv's --resolution lowest-direct: the core, `config`, `socketio`, `rx`, `confluent`;
# transitive ones resolve normally), in .venv-lowest. A floor that is too low fails here,
# not on a user's machine. The test runner (the `testing` extra) is installed at its
# newest: pytest 8.2's unraisable-exception hook turns a socket some earlier test left to
# the garbage collector into a failure of whichever test runs the collection.
# Needs `make install-test-deps` first (uv comes with the test extra, the jars with it).
set -euo pipefail
cd "$(dirname "$0")/.."
UV=.venv/bin/uv
VENV=.venv-lowest
rm -rf "$VENV"  # a fresh one each run: nothing left from the last resolution
$UV venv -q --python .venv/bin/python "$VENV"
$UV pip compile -q --resolution lowest-direct pyproject.toml \
  --extra config --extra socketio --extra rx --extra confluent -o "$VENV/requirements.txt"
$UV pip install -q --python "$VENV/bin/python" -r "$VENV/requirements.txt"
mapfile -t runner < <(.venv/bin/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["testing"], sep="\n")')
# Test-only tools: the official OpenAPI 3.1 schema; redis for the examples/ transport.
$UV pip install -q --python "$VENV/bin/python" "${runner[@]}" "openapi-spec-validator>=0.7" "redis>=5.0.1"
$UV pip install -q --python "$VENV/bin/python" --no-deps -e .
grep -E '^(starlette|injector|pydantic|uvicorn|websockets|aiokafka|pydantic-settings|reactivex|confluent-kafka)==' \
  "$VENV/requirements.txt" | tr '\n' ' '; echo
"$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/di tests/messaging tests/http tests/test_config.py tests/transports/test_contract.py \
  tests/testing/test_enhancer_overrides.py tests/testing/test_live_clients.py \
  tests/testing/test_kafka_double.py tests/testing/test_kafka_double_parity.py "$@"

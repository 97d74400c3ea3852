# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test install install-test-deps lint typecheck docs pytest bench charts soak fuzz clean test-lowest

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	$(PIP) install -q -e .

## Run the example app on http://127.0.0.1:8000 (in-memory transport, nothing else needed).
run: install
	$(PY) -m example_app

## Install everything the tests need (Python packages, Kafka jars, npm packages, Chromium),
## then run the quality gates and the whole test suite.
test: install-test-deps lint typecheck docs pytest

install-test-deps: $(PY)
	$(PIP) install -q -e '.[test,docs]'
	bash scripts/install-test-deps.sh

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck:
	$(PY) -m mypy --strict framework/

## The docs site must build without warnings (broken links, pages missing from nav).
docs:
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

pytest:
	$(PY) -m pytest -q

## The core tests on the lowest dependency versions pyproject.toml allows (uv, .venv-lowest).
test-lowest: install-test-deps
	bash scripts/test-lowest.sh

bench: install
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## The docs' benchmark charts (docs/img/benchmarks/*.svg) from the results saved in
## benchmarks/results/; refresh one with `$(PY) -m benchmarks.<name> --json
## benchmarks/results/<name>.json` (the Kafka scripts start their own broker).
charts: install
	$(PY) -m benchmarks.charts

## Minutes of mixed Kafka/WS/Socket.IO/SSE traffic with slow and leaving clients; fails if
## the server's memory or file descriptors keep growing (not part of `make test`).
soak: install-test-deps
	PYTHONPATH=. $(PY) benchmarks/soak.py --minutes $${SOAK_MINUTES:-5}

## Property-based fuzzing with many more examples than CI's fixed-seed profile (minutes).
fuzz:
	FUZZ_PROFILE=long $(PY) -m pytest -q tests/fuzz --hypothesis-show-statistics

clean:
	rm -rf $(VENV) .venv-lowest build *.egg-info

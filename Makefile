# Set-up and run. `make run` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo test test-fast lint format bench sandbox clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m app.run

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# Everyday: all but the long chaos, scale and outage tests (CI runs `make test`), on two processes.
test-fast: lint
	$(BIN)/pytest -m "not slow" -n 2 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	command -v wrk >/dev/null || (command -v apt-get >/dev/null && apt-get install -y -q wrk >/dev/null) || true
	$(BIN)/python -m tests.bench

demo: install
	$(BIN)/python -m app.run --demo

sandbox: install
	$(BIN)/flask --app sandbox.klaviyo run --port $${SANDBOX_PORT:-8100}

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .mypy_cache .cache

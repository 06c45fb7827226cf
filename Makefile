# Two commands set everything up on a fresh machine with Python 3.11+:
#   make demo   creates the venv, installs, seeds the emulators and shows the org
#   make test   creates the venv if needed and runs the fast suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test test-all lint demo sandbox bench bench-full clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "syncd needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -p no:cacheprovider

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/syncd demo

sandbox: $(STAMP)
	$(BIN)/syncd sandbox

# Every benchmark in benchmarks/, each in its own process, writes docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all --scales 10000,100000

bench-full: $(STAMP)
	$(BIN)/python -m benchmarks.run_all --scales 10000,100000,1000000 --limited-up-to 1000000

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Each target creates .venv on first use and installs what it needs from this project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LINT   := src tests run.py $(wildcard bench)

.PHONY: run test test-browser bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.browser-installed: $(VENV)/.test-installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,browser]'
	touch $@

$(VENV)/.bench-installed: $(VENV)/.test-installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/python run.py $(ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check $(LINT)
	$(BIN)/ruff format --check $(LINT)
	$(BIN)/mypy --strict src

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The observer page in Debian's Chromium (Playwright drives it; its own browser download is not
# used): installs the `chromium` package with apt if it is missing. `make test` leaves these out.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

test-browser: $(VENV)/.browser-installed
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	STREAMVISOR_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q tests/browser $(PYTEST_ARGS)

bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

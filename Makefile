# Each target creates .venv on first use and installs what it needs from this project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LINT   := src tests run.py $(wildcard bench)

.PHONY: run test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
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

bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

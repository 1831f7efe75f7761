# Quick start: `make demo` (flowers example end to end) and `make test` (the suite).
# Both create .venv with the system's python3 when it is missing; nothing is
# cached outside .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean bench mutants

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps make re-installation happen only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/flowers/demo.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples benchmarks

# The suite under coverage (children included); the per-module table is printed at the end.
test: lint
	$(BIN)/python -m pytest --cov --cov-report=term

clean:
	rm -rf demo .pytest_cache .ruff_cache

# Regenerate benchmarks/RESULTS.md (long: tens of minutes on 2 cores). QUICK=1 for a smoke run.
bench: $(VENV)/.installed-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" bash benchmarks/run_all.sh

# Do the equivalence tests bite? Plants one bug at a time in a copy of src/ (minutes).
mutants: $(VENV)/.installed-dev
	$(BIN)/python tests/mutants.py

# Quick start: `make demo` (flowers example end to end) and `make test` (the suite).
# Both create .venv with the system's python3 when it is missing; nothing is
# cached outside .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test quick-test lint clean bench mutants browser docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps make re-installation happen only when pyproject.toml changes. .ci/install.py installs
# with uv (same requirements, index and pip settings; 24-30 s against pip's 91 s for the dev
# extras here), and with pip where uv cannot.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python .ci/install.py -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python .ci/install.py -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/flowers/demo.sh

# ruff, then the dependency direction (import-linter contracts in pyproject.toml).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples benchmarks docs
	$(BIN)/lint-imports

# The report's browser test drives Debian's Chromium through its WebDriver (a browser that
# pip would download cannot work offline): installed here when missing (root or sudo).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi

# Test processes (pytest-xdist): one per core of the 2-core CI machine; each test module runs
# in one process (--dist loadscope), so its module fixtures are built once.
WORKERS ?= 2

# The suite under SlipCover's line coverage (the CLI's child processes too: their parts land in
# .coverage-parts/), then the per-module table and the modules under 90 % of lines.
test: lint browser
	rm -rf .coverage-parts && mkdir .coverage-parts
	COVERAGE_PARTS=$(CURDIR)/.coverage-parts $(BIN)/python -m slipcover --source src/resnet_ft \
	  --json --out .coverage-parts/suite.json \
	  -m pytest -n $(WORKERS) --dist loadscope --durations=25
	$(BIN)/python tests/coverage_floor.py .coverage-parts .coverage.json 90

# The suite alone, without coverage (faster while iterating).
quick-test: lint browser
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadscope

# The documentation site into site/ (docs/, mkdocs.yml): offline, and --strict, as `make test`
# builds it (tests/docs/). NO_MKDOCS_2_WARNING silences Material's end-of-life banner.
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

clean:
	rm -rf demo site .pytest_cache .ruff_cache

# Regenerate benchmarks/RESULTS.md (long: tens of minutes on 2 cores). QUICK=1 for a smoke run.
bench: $(VENV)/.installed-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" bash benchmarks/run_all.sh

# Do the equivalence tests bite? Plants one bug at a time in a copy of src/ (minutes).
mutants: $(VENV)/.installed-dev
	$(BIN)/python tests/mutants.py

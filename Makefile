# Quick start: `make demo` (flowers example end to end) and `make test` (the suite).
# Both create .venv with the system's python3 when it is missing; nothing is
# cached outside .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Bytecode is cached in the venv like everything else, also where the environment tells
# Python not to write it beside the sources (PYTHONDONTWRITEBYTECODE): without it each of
# the suite's Python processes (two test workers, each CLI child process) compiles the
# ~4,000 modules TensorFlow imports from source again (import 8.3 s against 5.6 s here).
export PYTHONPYCACHEPREFIX := $(CURDIR)/$(VENV)/pycache
unexport PYTHONDONTWRITEBYTECODE

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
# in one process (--dist loadscope), so its module fixtures are built once; modules are handed
# out longest first, in the order tests/support/schedule.py collects them (no reordering).
WORKERS ?= 2
XDIST := -n $(WORKERS) --dist loadscope --no-loadscope-reorder

# Where the suite's temporary files go. Its runs write and delete a ResNet (100-200 MB) each,
# some hundred times: on this machine ext4 took 0.5-0.75 s to write a new 94 MB file and tmpfs
# 0.06 s (test_train with test_distill: 110 s against 98 s). So a memory-backed /dev/shm holds
# them where the machine has room for them (they peaked at 3.7 GB, beside ~13 GB of test
# processes): 8 GiB free there and 16 GiB of memory available; elsewhere the system's
# temporary directory does.
SCRATCH := $(shell d=/dev/shm; [ -d $$d ] && [ -w $$d ] && \
  [ "$$(df -Pk $$d | awk 'NR == 2 {print $$4}')" -gt 8388608 ] 2>/dev/null && \
  [ "$$(awk '/^MemAvailable:/ {print $$2}' /proc/meminfo)" -gt 16777216 ] 2>/dev/null && echo $$d)
TEST_ENV := $(if $(SCRATCH),TMPDIR=$(SCRATCH))

# The suite under SlipCover's line coverage (the CLI's child processes too: their parts land in
# .coverage-parts/), then the per-module table and the modules under 90 % of lines.
test: lint browser
	rm -rf .coverage-parts && mkdir .coverage-parts
	$(TEST_ENV) COVERAGE_PARTS=$(CURDIR)/.coverage-parts \
	  $(BIN)/python -m slipcover --source src/resnet_ft --json --out .coverage-parts/suite.json \
	  -m pytest $(XDIST) --durations=25
	$(BIN)/python tests/coverage_floor.py .coverage-parts .coverage.json 90

# The suite alone, without coverage (faster while iterating).
quick-test: lint browser
	$(TEST_ENV) $(BIN)/python -m pytest $(XDIST)

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
	$(TEST_ENV) $(BIN)/python tests/mutants.py

# sdm: two commands for a fresh machine with Python 3.11, git and make.
#   make test   set up .venv if needed, run the fast test suite
#   make book   set up, run the default pipeline, build the book (prints the index.html path)

PYTHON ?= python3
PROFILE ?= default
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BOOK_DIR := book
# The default profile renders into book/ (committed); every other profile into its own folder.
BOOK_SRC = $(if $(filter default,$(PROFILE)),$(BOOK_DIR),.build/$(PROFILE)/book)
JB_BUILD = $(BIN)/jupyter-book build -W --keep-going
SEEDS ?= 0
PYTEST_ARGS ?=
# Where `make reproduce` trains: local, or slurm (JOBS jobs per stack, resources from SLURM_CONFIG)
LAUNCHER ?= local
JOBS ?= 1
SLURM_CONFIG ?=
LAUNCH = --launcher $(LAUNCHER)$(if $(filter slurm,$(LAUNCHER)), --jobs $(JOBS)$(if $(SLURM_CONFIG), --slurm-config $(SLURM_CONFIG)))

.DEFAULT_GOAL := help
.PHONY: help setup test test-all test-slurm book book-only check-book reproduce clean-book lint format data-medium

help:
	@echo "make test       set up .venv (first time) and run the tests (slow ones skipped)"
	@echo "make test-all   the same, slow tests included"
	@echo "make test-slurm start a single-node SLURM here (tools/slurm-up, as root) and run the tests"
	@echo "                against it; skipped, with the reason, when no cluster comes up"
	@echo "make book       set up, train/evaluate what is missing, execute the notebooks, build the book"
	@echo "                (PROFILE=quick|medium|reproduce renders into .build/PROFILE/book)"
	@echo "make check-book build the committed book and the quick profile, check every page in Chromium"
	@echo "make reproduce  retrain seed 0 (SEEDS=\"0 1 2 3 4\" for more) from scratch, rebuild, diff Table 1"
	@echo "                (LAUNCHER=slurm JOBS=5 SLURM_CONFIG=cluster.toml: train as SLURM jobs)"
	@echo "make lint       ruff check and format check"
	@echo "make data-medium download 7 Debian packages, build data/medium (~4.4 h, ~300 MB)"
	@echo "make clean-book remove $(BOOK_DIR)/_build"

setup: $(STAMP)

# The stamp is rebuilt whenever the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "error: $(PYTHON) is older than Python 3.11; run make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -e . --no-deps
	touch $@

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: setup
	$(BIN)/python -m pytest -q --runslow $(PYTEST_ARGS)

# The launcher against a real SLURM: tools/slurm-up installs Debian's slurmctld, slurmd,
# slurm-client and munge if missing and starts them (tools/slurm-up --stop stops them).
test-slurm: setup
	@if tools/slurm-up; then $(BIN)/python -m pytest -q --slurm tests/test_slurm.py $(PYTEST_ARGS); \
	else echo "make test-slurm: skipped: no SLURM cluster came up (the line above says why)"; fi

# Execute the notebooks with papermill (training only what is missing), then render. The
# rendering step alone is `jupyter-book build book/`, which never trains.
book: setup
	@if [ "$(PROFILE)" = medium ] && [ ! -f data/medium/manifest.csv ]; then \
		echo "The medium corpus is not built yet: building it first (make data-medium)."; \
		$(MAKE) data-medium; fi
	$(BIN)/python -m sdm book --profile $(PROFILE)
	$(MAKE) book-only PROFILE=$(PROFILE)

book-only: setup
	$(JB_BUILD) $(BOOK_SRC)
	@echo "Book: $(abspath $(BOOK_SRC)/_build/html/index.html)"

# Both books a reader can get: the committed one (book/, rendered from committed notebooks, no
# training) and the quick profile from scratch (its own results and build folders); then every
# page of both in headless Chromium, offline, with a screenshot of each under .build/screenshots.
check-book: setup
	@command -v chromium >/dev/null 2>&1 || { \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "Installing Debian's chromium for the browser check"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "error: make check-book needs Chromium: install Debian's 'chromium' package (apt-get install chromium)" >&2; exit 1; fi; }
	$(JB_BUILD) $(BOOK_DIR)
	rm -rf results-quick .build/quick
	$(MAKE) book PROFILE=quick
	$(BIN)/python tools/check_book.py $(BOOK_DIR)/_build/html .build/quick/book/_build/html --screenshots .build/screenshots

# Retrain from scratch into results-reproduce/, rebuild the book from it, compare with committed Table 1.
reproduce: setup
	rm -rf results-reproduce .build/reproduce
	$(BIN)/python -m sdm table1 --seeds $(SEEDS) --out results-reproduce --quiet $(LAUNCH)
	$(BIN)/python -m sdm book --profile reproduce --seeds $(SEEDS)
	$(MAKE) book-only PROFILE=reproduce
	$(BIN)/python tools/compare_tables.py results/shipped/clean/table1.csv results-reproduce/shipped/clean/table1.csv

data-medium: setup
	$(BIN)/python recipes/medium.py build

clean-book:
	rm -rf $(BOOK_DIR)/_build .build

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

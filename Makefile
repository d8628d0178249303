# sdm: two commands for a fresh machine with Python 3.11, git and make.
#   make test   set up .venv if needed, run the fast test suite
#   make book   set up, run the default pipeline, build the book (prints the index.html path)

PYTHON ?= python3
PROFILE ?= default
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BOOK_DIR := book
# What `make book` computes before rendering; override, e.g. PIPELINE="$(BIN)/python -m sdm ...".
PIPELINE ?= $(BIN)/python -m sdm table1 --seeds 0 --data shipped
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test test-all pipeline book clean-book lint format

help:
	@echo "make test       set up .venv (first time) and run the tests (slow ones skipped)"
	@echo "make test-all   the same, slow tests included"
	@echo "make book       set up, run the pipeline, build the book with warnings as errors"
	@echo "make lint       ruff check and format check"
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

pipeline: setup
	$(PIPELINE)

book: setup
	$(MAKE) pipeline
	$(BIN)/jupyter-book build -W --keep-going $(BOOK_DIR)/
	@echo "Book: $(abspath $(BOOK_DIR)/_build/html/index.html)"

clean-book:
	rm -rf $(BOOK_DIR)/_build

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

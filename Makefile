# polyfit: `make run` runs a Legendre fit through an embedded Redis and a worker;
# `make test` runs the tests. Both set up .venv first (torch's CPU build before the project).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
TORCH = torch==2.13.0
PYTEST_ARGS ?=

.PHONY: run up down test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[worker,embedded,plot,dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/polyfit-local run

up: $(BIN)/.installed
	$(BIN)/polyfit-local up

down:
	$(BIN)/polyfit-local down

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python bench/approaches.py
	$(BIN)/python bench/queue.py
	$(BIN)/python bench/sweep.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache

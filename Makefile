# Set-up and everyday commands. `make install` works on a fresh machine (it builds llama.cpp for
# the embedded local judge: ~6 minutes the first time, seconds once pip has cached the wheel).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
RMB_DATA ?= $(if $(wildcard ../shared/rmb/RMB_dataset),../shared/rmb/RMB_dataset,)
export RMB_DATA

.PHONY: install test demo bench lint

install: $(BIN)/rmb

$(BIN)/rmb: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev,local]'
	touch $@

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check judges prompts benchmark tests
	$(BIN)/ruff format --check judges prompts benchmark tests
	$(BIN)/mypy

demo: install
	$(BIN)/rmb demo

bench: install
	$(BIN)/python bench/run.py

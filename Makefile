# Two commands for a fresh machine: `make app` and `make test`. Both create (or reuse) .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch goes in first, so that nothing later pulls the multi-GB CUDA build.
# Elsewhere, point pip at a CPU index: make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PORT ?= 8501

STAMP := $(VENV)/.installed-stamp
SOURCES := pyproject.toml setup.py $(wildcard ext/*.pyx ext/*.pxd ext/*.h)

.PHONY: setup app test test-fast lint format bench clean

setup: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet "Cython>=3.0" "numpy>=1.26"
	$(BIN)/python -m pip install --quiet --no-build-isolation -e ".[test]"
	$(BIN)/python setup.py --quiet build_ext --inplace
	touch $(STAMP)

app: setup
	$(BIN)/bnn-workbench app --port $(PORT)

test: setup
	$(BIN)/python -m pytest

# Without the real-browser flows, the full-MNIST tests and the ones marked slow: the edit-test loop.
test-fast: setup
	$(BIN)/python -m pytest -m "not browser and not mnist and not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/bnn-workbench bench kernels

clean:
	rm -rf build *.egg-info workbench/deploy/*.so ext/*.c

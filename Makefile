# Creative Memory — set-up and everyday commands. Every target bootstraps .venv first (pip).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Test workers (pytest-xdist): one per logical core, at most 4 (each may hold a few GiB of models); 0 runs in one process.
TEST_WORKERS ?= logical
XDIST := -n $(TEST_WORKERS) --maxprocesses=4 --dist loadfile --no-loadscope-reorder

.PHONY: help bootstrap demo test test-fast bench dev lint clean

help:
	@echo "make demo   - bootstrap .venv, generate the demo scenario, materialise every asset"
	@echo "make test   - bootstrap .venv and run the test suite"
	@echo "make dev    - open the Dagster UI (dagster dev) on the demo warehouse"
	@echo "make bench  - run the benchmarks in bench/ (results in bench/results/)"
	@echo "make lint   - ruff"
	@echo "make clean  - remove the warehouse contents (keeps .venv)"

# Re-installs only when pyproject.toml changes. torch/torchvision are bounded in pyproject to the
# pair that pip installs from local disk on the project machines (see docs/operations.md).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps 'rapidocr-onnxruntime>=1.4.4,<1.5'  # optional OCR backend; why --no-deps: pyproject.toml
	@touch $(STAMP)

bootstrap: $(STAMP)

demo: bootstrap
	$(VENV)/bin/creative-dag demo

test: bootstrap
	$(PY) -m pytest -ra $(XDIST) $(PYTEST_ARGS)

test-fast: bootstrap
	$(PY) -m pytest -ra $(XDIST) -m "not slow" $(PYTEST_ARGS)

bench: bootstrap
	$(PY) bench/encoders.py
	$(PY) bench/cbr.py

dev: bootstrap
	$(VENV)/bin/creative-dag dev

lint: bootstrap
	$(VENV)/bin/ruff check creative_dag tests bench

clean:
	find warehouse -mindepth 1 -not -name .gitkeep -delete

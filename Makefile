# Two entry points for a fresh machine (see README):
#   make study   -> set up .venv, install geodiv, run the quick embedded study
#   make test    -> set up .venv, install geodiv, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
OUT ?= study-out

.PHONY: setup study test test-all lint bench layers clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU wheel of torch 2.13.0 where it lies on local disk; otherwise any torch >= 2.4 from the index.
	$(PIP) install -q "torch==2.13.0" || $(PIP) install -q "torch>=2.4"
	$(PIP) install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

study: setup
	$(VENV)/bin/geodiv study --profile quick --out $(OUT)

test: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(PY) -m pytest -q -n 2 --dist loadfile

test-all: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m ""

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts

bench: setup
	$(PY) -m benchmarks.run_all

layers: setup
	$(PY) scripts/derive_layers.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache

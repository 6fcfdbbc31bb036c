# Two entry points for a fresh machine (see README):
#   make study   -> set up .venv, install geodiv, run the quick embedded study (PROFILE=standard-cpu: the 2-hour one)
#   make test    -> set up .venv, install geodiv, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
OUT ?= study-out
# quick: the README's main job (11-14 min on 2 cores); standard-cpu: the 2-hour CPU study (docs/study.md, "Profiles").
PROFILE ?= quick
# Two study steps at a time, one thread each: the quick study took 11.1 min against 14.2 min with one job on the
# 2-core reference machine, 2026-11-28 (docs/study.md, "Concurrent steps and GPUs").
JOBS ?= 2

.PHONY: setup setup-dev study test test-all lint bench layers clean

# Upgrading pip first is faster overall: the venv's bundled pip took 140 s for the whole setup against 93 s.
# --no-compile: pip otherwise byte-compiles every installed module (torch's thousands) on one core, 70 % of the
# setup's CPU time (torch: 34 s against 12 s; geodiv's other dependencies: 72 s against 29 s, 2026-11-28); Python
# compiles the few modules a run imports on first import instead.
PIP_INSTALL := $(PIP) install -q --no-compile
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU wheel of torch 2.13.0 where it lies on local disk; otherwise any torch >= 2.4 from the index.
	$(PIP_INSTALL) "torch==2.13.0" || $(PIP_INSTALL) "torch>=2.4"
	$(PIP_INSTALL) -e .
	touch $@

# The test and benchmark tools (pytest, ruff, dask for the distributed-build tests): 13 s that the study does not need.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP_INSTALL) -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

study: setup
	$(VENV)/bin/geodiv study --profile $(PROFILE) --jobs $(JOBS) --out $(OUT)

test: setup-dev
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(PY) -m pytest -q -n 2 --dist loadfile

test-all: setup-dev
	$(PY) -m pytest -q -n 2 --dist loadfile -m ""

lint: setup-dev
	$(VENV)/bin/ruff check src tests benchmarks scripts

bench: setup-dev
	$(PY) -m benchmarks.run_all

layers: setup
	$(PY) scripts/derive_layers.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache

# The two commands of the Quick start, and a few for developers.
# Everything is installed into a virtual environment (.venv), so nothing
# touches the system's Python.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PACKS ?= examples/packs

.PHONY: up install test deps lint unit bench

$(PY):
	scripts/make-venv $(PYTHON) $(VENV)

install: $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -e .

up: install
	$(VENV)/bin/squall up --packs-dir $(PACKS)

deps: $(PY)
	PYTHON=$(PY) scripts/test-deps

lint: deps
	$(PY) -m ruff check squall tests bench
	$(PY) -m ruff format --check squall tests bench
	$(PY) -m mypy squall/core

# Two workers: most tests wait on servers, browsers and SSH, not on a core.
test: deps lint
	$(PY) -m pytest -n 2

unit: $(PY)
	$(PY) -m pytest tests/unit -q

bench: install
	$(PY) bench/run.py

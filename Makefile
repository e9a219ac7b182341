# The two commands of the Quick start, and a few for developers.
PYTHON ?= python3
PACKS ?= examples/packs

.PHONY: up install test deps lint unit bench

install:
	$(PYTHON) -m pip install -q -e .

up: install
	squall up --packs-dir $(PACKS)

deps:
	scripts/test-deps

lint:
	$(PYTHON) -m ruff check squall tests bench
	$(PYTHON) -m mypy squall/core

test: deps lint
	$(PYTHON) -m pytest

unit:
	$(PYTHON) -m pytest tests/unit -q

bench: install
	$(PYTHON) bench/run.py

# The two commands of the README. Each sets up what it needs on a fresh machine:
# a virtualenv in .venv with the project and its test tools, installed from pyproject.toml.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: up test lint bench

up: $(STAMP)
	$(VENV)/bin/sip up --demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/pip install -q -e ".[bench]"
	$(VENV)/bin/python bench/event_store.py
	$(VENV)/bin/python bench/rebuild.py
	$(VENV)/bin/python bench/consent_check.py

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $(STAMP)

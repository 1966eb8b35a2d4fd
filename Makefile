# The two commands of the README. Each sets up what it needs on a fresh machine:
# a virtualenv in .venv with the project and its test tools, installed from pyproject.toml.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: up test lint bench browser

up: $(STAMP)
	$(VENV)/bin/sip up --demo

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -m "not latency"
	$(VENV)/bin/python -m pytest -m latency -n 0

bench: $(STAMP)
	$(VENV)/bin/pip install -q -e ".[bench]"
	$(VENV)/bin/python bench/event_store.py
	$(VENV)/bin/python bench/rebuild.py
	$(VENV)/bin/python bench/personal_data.py
	$(VENV)/bin/python bench/consent_check.py
	$(VENV)/bin/python bench/web_pages.py
	$(VENV)/bin/python bench/notification_latency.py
	$(VENV)/bin/python bench/scaling.py
	$(VENV)/bin/python bench/http_vs_library.py

# Debian's Chromium for the browser tests (tests/browser.py), installed when missing and we
# may; without it those tests skip locally and fail under CI=true.
browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		echo "no Chromium at $(CHROMIUM): the browser tests will skip (apt-get install chromium)"

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $(STAMP)

# Switchyard: `make run` serves on the embedded SQLite default; `make test` runs every test.
# Every install step lives here, so a fresh machine needs nothing but Python 3.11, a C compiler and Node 20.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Reinstall (and rebuild the Cython extensions) when packaging or a fast-path source changes.
FASTPATH_SRC := $(wildcard fastpath/*.pyx fastpath/*.pxd)
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
WEB_STAMP := web/dist/index.html

.PHONY: run test bench lint clean services web install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

$(STAMP): $(BIN)/python pyproject.toml setup.py $(FASTPATH_SRC)
	$(PIP) install --quiet -e .
	@touch $@

$(TEST_STAMP): $(STAMP)
	$(PIP) install --quiet -e '.[test,bench]'
	@touch $@

install: $(STAMP)

# The web app is built only once web/ has one (npm ci from the committed lockfile).
web:
	@if [ -f web/package.json ]; then cd web && npm ci --no-audit --no-fund && npm run build; fi

run: $(STAMP) web
	$(BIN)/switchyard serve

services:
	@$(BIN)/python -m tests.services

test: $(TEST_STAMP) web services
	$(BIN)/python -m pytest

bench: $(TEST_STAMP)
	$(BIN)/switchyard bench

lint: $(TEST_STAMP)
	$(BIN)/ruff check app fastpath signaling tests bench setup.py

clean:
	rm -rf $(VENV) build *.egg-info fastpath/*.c fastpath/*.so web/dist web/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Switchyard: `make run` serves on the embedded SQLite default; `make test` runs every test.
# Every install step lives here, so a fresh machine needs nothing but Python 3.11, a C compiler and Node 20
# (`make test` installs Debian's Chromium itself).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Reinstall (and rebuild the Cython extensions) when packaging or a fast-path source changes.
FASTPATH_SRC := $(wildcard fastpath/*.pyx fastpath/*.pxd loadgen/*.pyx loadgen/*.pxd)
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
WEB_STAMP := web/dist/index.html

.PHONY: run test bench loadtest lint clean services web chromium coturn install check-fresh-install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

# The SDK (sdk/python/, the distribution switchyard-client) is a dependency that no index has: it is
# installed from its path in the same pip call, which then satisfies the server's requirement by name.
$(STAMP): $(BIN)/python pyproject.toml setup.py sdk/python/pyproject.toml $(FASTPATH_SRC)
	$(PIP) install --quiet -e ./sdk/python -e .
	@touch $@

$(TEST_STAMP): $(STAMP)
	$(PIP) install --quiet -e '.[test,bench]'
	@touch $@

install: $(STAMP)

# The web app (web/, React + Vite) and the client package it is built on (web/packages/client, an npm
# workspace): npm ci at the workspace root from the committed lockfile when it changes, a build (the
# package, then the app and the package's example page) when a source of either changes. Skipped while
# web/ has no package.json.
WEB_CLIENT := web/packages/client
WEB_SRC := $(shell find web/src web/public $(WEB_CLIENT)/src $(WEB_CLIENT)/example -type f -not -path '*/dist/*' 2>/dev/null) \
	$(wildcard web/index.html web/vite.config.ts web/tsconfig.json $(WEB_CLIENT)/tsconfig*.json)
WEB_DEPS := web/node_modules/.installed

$(WEB_DEPS): web/package.json web/package-lock.json $(WEB_CLIENT)/package.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

$(WEB_STAMP): $(WEB_DEPS) $(WEB_SRC)
	cd web && npm run build

web:
	@if [ -f web/package.json ]; then $(MAKE) --no-print-directory $(WEB_STAMP); fi

# Debian's Chromium for the browser tests (tests/browser); Playwright drives it and never downloads one.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# Debian's coturn for the TURN tests (tests/test_turn.py, tests/browser/test_turn_relay.py); `switchyard serve`
# starts its `turnserver` itself when SWITCHYARD_TURN=coturn, so Debian's own service is not needed.
coturn:
	@command -v turnserver >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends coturn; }

run: $(STAMP) web
	$(BIN)/switchyard serve

services:
	@$(BIN)/python -m tests.services

test: $(TEST_STAMP) web chromium coturn services
	$(BIN)/python -m pytest

# The product starts from its declared dependencies alone: the wheel set the Dockerfile builds,
# installed without extras in a throwaway virtualenv, answers /api/health (tests/fresh_install_check.sh).
check-fresh-install:
	PYTHON=$(PYTHON) bash tests/fresh_install_check.sh

bench: $(TEST_STAMP)
	$(BIN)/switchyard bench

# A short load test against a server of its own (docs/loadtest.md); LOADTEST_ARGS adds options.
loadtest: $(TEST_STAMP)
	$(BIN)/switchyard loadtest --spawn-server --plot bench/results/loadtest.png $(LOADTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check common fastpath media signaling app loadgen tests bench setup.py sdk/python

clean:
	rm -rf $(VENV) build *.egg-info fastpath/*.c fastpath/*.so loadgen/*.c loadgen/*.so web/dist web/node_modules $(WEB_CLIENT)/dist $(WEB_CLIENT)/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# The handful of commands people need. Everything runs offline once `make setup` has run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo serve test lint test-programs toy-data

setup: $(VENV)/.installed

# pip reaches only the package registries; torch==2.13.0 is the CPU build (see README).
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check 'setuptools==80.10.2'
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

demo: setup
	$(PY) app.py demo

serve: setup
	$(PY) app.py serve

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Programs the tests run: Debian's Chromium, driven through Playwright (no browser is ever
# downloaded), and sox and ffmpeg, which make degraded copies of toy clips. Each package is
# named as its command.
TEST_PROGRAMS := chromium sox ffmpeg
test-programs:
	@missing=$$(for p in $(TEST_PROGRAMS); do command -v $$p >/dev/null || echo $$p; done); \
	[ -z "$$missing" ] || { echo "installing from Debian for the tests (needs root):" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; }

test: lint test-programs
	$(PY) -m pytest -q --timeout=600

toy-data:
	bash scripts/make_toy_data.sh

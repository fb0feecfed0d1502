# dnscock: `make run ARGS="..."` sets up and runs the server; `make test` sets up and runs the tests;
# `make check` (under two minutes) lints and runs the unit and integration tests, for the edit-test loop;
# `make lint` runs ruff with the project's rules (pyproject.toml);
# `make bench BENCH_ARGS="..."` measures it against dnsmasq (as root; see bench/README.md);
# `make demo` (as root) shows it answering for a few containers of a private Docker engine;
# `make fuzz` runs a million fuzzed packets; `make soak` (as root) ten minutes of load and churn.
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=
DEMO_ARGS ?=
FUZZ_ARGS ?= --cases 1000000 --json fuzz-summary.json
SOAK_ARGS ?= --minutes 10 --json soak-results.json

.PHONY: run test check lint bench demo fuzz soak system-deps clean

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(VENV)/bin/python -m dnscock $(ARGS)

system-deps:
	scripts/install-system-deps

test: system-deps $(VENV)/.dev
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

LINT_PATHS ?= dnscock tests bench scripts

lint: $(VENV)/.dev
	$(VENV)/bin/python -m ruff check $(LINT_PATHS)

# Tests marked slow (pyproject.toml) are left to `make test`.
check: lint system-deps
	$(VENV)/bin/python -m pytest -m "not slow" tests/unit tests/integration $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

demo: system-deps $(VENV)/.dev
	$(VENV)/bin/python scripts/demo.py $(DEMO_ARGS)

fuzz: $(VENV)/.dev
	$(VENV)/bin/python scripts/fuzz.py $(FUZZ_ARGS)

soak: system-deps $(VENV)/.dev
	$(VENV)/bin/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# dnscock: `make run ARGS="..."` sets up and runs the server; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test system-deps clean

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

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# TwinEngine — developer commands. Needs only Python 3.11 on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# torch, when an extra needs it, must come from the local CPU wheel: pin it, never a range
TORCH_PIN := torch==2.13.0

.PHONY: help venv install install-test demo test test-fast bench conformance lint format clean ui

help:
	@echo "make demo         install and run the hello-twin workflow end to end"
	@echo "make test         install test dependencies and run the whole test suite"
	@echo "make bench        benchmarks (engine and API vs cwltool, provenance, events, serving vs mlflow, DDP training)"
	@echo "make conformance  CWL v1.2 conformance: twin-cwl-runner vs cwltool -> docs/conformance.md"
	@echo "make lint         ruff check + ruff format --check"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

venv: $(BIN)/python

# byte-compile the sources once: with PYTHONDONTWRITEBYTECODE set (as on the build
# machines) every command would otherwise compile them again (~50 ms per start)
install: venv
	$(PIP) install --quiet -e ".[demo]"
	$(BIN)/python -m compileall -q src/twinengine

install-test: venv
	$(PIP) install --quiet -e ".[test]"
	$(BIN)/python -m compileall -q src/twinengine

demo: install
	@TWIN_HOME=$${TWIN_HOME:-$(CURDIR)/.twin-demo-home} $(BIN)/python examples/hello-twin/run_demo.py

test: install-test
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

test-fast: install-test
	$(BIN)/python -m pytest -n 2 -q -m "not slow and not conformance"

bench: install-test
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/provenance.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/events.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/training.py

conformance: install-test
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python scripts/conformance.py

lint: install-test
	$(BIN)/ruff check src tests benchmarks scripts examples
	$(BIN)/ruff format --check src tests benchmarks scripts examples

format: install-test
	$(BIN)/ruff format src tests benchmarks scripts examples
	$(BIN)/ruff check --fix src tests benchmarks scripts examples

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .twin-demo-home

# the web UI (sources in ui/): npm ci + vite build into src/twinengine/web
ui:
	cd ui && npm ci && npm run build

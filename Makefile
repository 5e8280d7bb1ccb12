# The two commands: `make demo` and `make test`. Both build the virtual
# environment on first use, so they work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2

.PHONY: demo test lint format docs bench bench-quick clean

$(VENV)/.base:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	touch $@

$(VENV)/.demo: $(VENV)/.base pyproject.toml
	$(PY) -m pip install -q -e ".[cli,flax]"
	touch $@

$(VENV)/.dev: $(VENV)/.base pyproject.toml
	$(PY) -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(VENV)/bin/jaxseg demo

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The site build runs inside pytest (tests/test_docs.py::test_mkdocs_build_strict); the
# documentation pages' code blocks run in background processes started at collection
# (conftest.py). --dist loadfile keeps each test file on one worker, so a module's
# one-compilation fixtures are built once, not once per worker.
test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q

docs: $(VENV)/.dev
	$(VENV)/bin/mkdocs build --strict

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.dev
	$(PY) -m benchmarks.run

bench-quick: $(VENV)/.dev
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) site build *.egg-info

# syncbot — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-faults lint typecheck bench emulators doctor clean

install: $(STAMP)

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m emulators demo

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy bot orchestrator
	$(BIN)/python -m pytest -q

test-faults: install
	$(BIN)/python -m pytest -q -m faults

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy bot orchestrator

emulators: install
	$(BIN)/python -m emulators

# Check a real setup (your .env / environment) against the live services; no data moves.
doctor: install
	$(BIN)/python -m bot doctor

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis

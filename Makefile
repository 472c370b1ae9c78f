# The two commands a user needs: `make run` and `make test`. Both set up the locked environment
# first (idempotent, no network once it exists).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-fast lint bench clean

setup:
	@scripts/setup_env.sh

run: setup
	$(BIN)/pipeline run

test: setup
	$(BIN)/python -m pytest

# Unit tests only: no pipeline runs, no training, no killed processes (under 2 minutes).
test-fast: setup
	$(BIN)/python -m pytest -m "not e2e and not slow"

# Style, then the layer contracts (pyproject.toml [tool.importlinter]).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

bench: setup
	$(BIN)/python bench/e2e.py

clean:
	rm -rf var

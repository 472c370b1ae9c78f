# The two commands a user needs: `make run` and `make test`. Both set up the locked environment
# first (idempotent, no network once it exists).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-mariadb run test test-fast lint bench clean

setup:
	@scripts/setup_env.sh
	@scripts/setup_graphviz.sh

run: setup
	$(BIN)/pipeline run

# The MariaDB server the ML Metadata tests use (installed and started if missing; idempotent).
setup-mariadb:
	@scripts/setup_mariadb.sh

# Two passes (scripts/run_tests.sh): pipelines two at a time, then the fast and serial tests.
test: setup setup-mariadb
	scripts/run_tests.sh

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
	@scripts/setup_mariadb.sh stop
	rm -rf var

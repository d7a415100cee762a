# The two commands of the README: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint format bench bench-realms dev clean analytics-sources

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/qbo-pipeline demo

test: $(STAMP)
	$(BIN)/ruff check qbo_pipeline qbo_pipeline_tests benchmarks
	$(BIN)/ruff format --check qbo_pipeline qbo_pipeline_tests benchmarks
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check qbo_pipeline qbo_pipeline_tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format qbo_pipeline qbo_pipeline_tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.cpu
	$(BIN)/python -m benchmarks.sync_bench
	$(BIN)/python -m benchmarks.analytics_bench
	$(BIN)/python -m benchmarks.postgres_bench
	$(BIN)/python -m benchmarks.vault_bench
	$(BIN)/python -m benchmarks.webhook_bench
	$(BIN)/python -m benchmarks.webhook_fuzz
	$(BIN)/python -m benchmarks.peers

# By hand, not in `bench`: 1, 10 and 50 companies synced by the daemon on both stacks, and
# a day of hourly schedules (about two hours on 2 cores; --quick for a smoke run).
bench-realms: $(STAMP)
	$(BIN)/python -m benchmarks.realms_bench

# The dbt sources and staging models, written from the entity catalog (after editing it).
analytics-sources: $(STAMP)
	$(BIN)/python -m qbo_pipeline.warehouse.dbt_sources

dev: $(STAMP)
	$(BIN)/qbo-pipeline dev

clean:
	rm -rf .qbo

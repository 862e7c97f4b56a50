# EchoPilot: every target calls the CLI; none kills processes by name.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EP     := $(BIN)/echopilot
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test lint format bench demo worker clean help start-automations \
	stop-automations status-automations retention

help:
	@echo "make run    start EchoPilot: API + dashboard, worker, scheduler (no services needed)"
	@echo "make test   run the whole test suite"
	@echo "make lint   ruff check, ruff format --check, mypy"
	@echo "make bench  run the benchmarks in bench/ and print their figures"
	@echo "make demo   load 30 days of demo history (remove with: echopilot demo reset)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(STAMP)

run: $(STAMP)
	@exec $(EP) up

test: $(DEVSTAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(DEVSTAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/scheduler.py

demo: $(STAMP)
	$(EP) demo seed

worker: $(STAMP)
	$(EP) worker

start-automations: $(STAMP)
	$(EP) scheduler start

stop-automations: $(STAMP)
	$(EP) scheduler stop

status-automations: $(STAMP)
	$(EP) scheduler status

retention: $(STAMP)
	$(EP) retention

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# EchoPilot: every target calls the CLI; none kills processes by name.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EP     := $(BIN)/echopilot
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test soak lint format bench demo worker clean help start-automations \
	stop-automations status-automations retention run-selfheal check-alerts optimize daily-report finance \
	payments reconcile-payments run-brief notion-check notion-sync doctor

help: ## list the targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/make \1\t\2/' | expand -t 28

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(STAMP)

run: $(STAMP) ## start EchoPilot: API + dashboard, worker, scheduler (no services needed)
	@exec $(EP) up

test: $(DEVSTAMP) ## run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

soak: $(DEVSTAMP) ## a simulated month of operations with a fault a day (SOAK_DAYS=30)
	ECHOPILOT_SOAK_DAYS=$(or $(SOAK_DAYS),30) $(BIN)/python -m pytest -m soak tests/soak -s $(PYTEST_ARGS)

lint: $(DEVSTAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(DEVSTAMP) ## ruff format and ruff check --fix
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP) ## run the benchmarks in bench/ and print their figures
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/scheduler.py
	$(BIN)/python bench/ops.py
	$(BIN)/python bench/finance.py
	$(BIN)/python bench/webhook.py
	$(BIN)/python bench/brief.py
	$(BIN)/python bench/notion.py
	$(BIN)/python bench/clock.py
	$(BIN)/python bench/doctor.py
	$(BIN)/python bench/load.py

notion-check: $(STAMP) ## check the Notion token and databases (turns a stopped connector back on)
	$(EP) notion check

notion-sync: $(STAMP) ## poll the Notion queue now and write jobs back to their pages
	$(EP) notion sync

doctor: $(STAMP) ## check every setting and integration; print the fix for each problem
	$(EP) doctor

demo: $(STAMP) ## load 30 days of demo history (remove: echopilot demo reset)
	$(EP) demo seed

worker: $(STAMP) ## run a worker in the foreground
	$(EP) worker

start-automations: $(STAMP) ## start this home's scheduler (or resume it)
	$(EP) scheduler start

stop-automations: $(STAMP) ## stop this home's scheduler
	$(EP) scheduler stop

status-automations: $(STAMP) ## the scheduler's state and every task's runs
	$(EP) scheduler status

retention: $(STAMP) ## prune old report files and operational rows
	$(EP) retention

run-selfheal: $(STAMP) ## re-queue stuck and failed jobs, end hopeless ones, list follow-ups
	$(EP) self-heal

check-alerts: $(STAMP) ## evaluate the alert rules now and send what fires
	$(EP) alerts check

optimize: $(STAMP) ## propose task types' prices from QA and margin (changes nothing)
	$(EP) optimize --dry-run

daily-report: $(STAMP) ## write yesterday's daily report (JSON, HTML, CSV) and send its summary
	$(EP) report daily

run-brief: $(STAMP) ## make the CEO brief now (JSON, HTML, Markdown) and email it when SMTP is set
	$(EP) brief --email

finance: $(STAMP) ## revenue, cost, profit, margin and ROI over 7 and 30 days, with breakdowns
	$(EP) finance

payments: $(STAMP) ## billed jobs by payment status, money in, disputes, last Stripe reconciliation
	$(EP) payments status

reconcile-payments: $(STAMP) ## apply Stripe events the webhook missed and make pending payment links
	$(EP) payments reconcile

clean: ## remove .venv and the tool caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

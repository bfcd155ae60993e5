# The README's two commands (demo, test) and the developer loop behind them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help demo test lint format check bench bench-api bench-proxies bench-deploy bench-sync bench-deprovision clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "policyhub needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) \
		|| { rm -rf $(VENV); echo "creating the virtualenv failed; on Debian: sudo apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.runtime

DEMO_TOOLS := --tool backstage=127.0.0.1:7007 --tool airflow=127.0.0.1:8080 --tool artifacts=127.0.0.1:9000 --tool packages=127.0.0.1:9100

# the demo gateways send browsers to the demo's policyhub to sign in
demo: export POLICYHUB_PUBLIC_URL := http://127.0.0.1:8000
demo: $(VENV)/.runtime ## serve the UI with demo data on http://127.0.0.1:8000 (SQLite, eager Celery), its gateways on :8081 (HAProxy) and :8082 (lighttpd) in front of stand-ins for the tools, its Okta and Space on :8701 and :8702
	@mkdir -p var
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py seed_demo --gateways-dir var/gateways
	@DEBUG=1 $(BIN)/python -m tests.fakes.demo_orgs --okta 127.0.0.1:8701 --space 127.0.0.1:8702 & orgs=$$!; \
		DEBUG=1 $(BIN)/python -m tests.fakes.tools $(DEMO_TOOLS) & tools=$$!; \
		DEBUG=1 $(BIN)/python manage.py run_gateways & gateways=$$!; \
		trap 'kill $$orgs $$tools $$gateways 2>/dev/null; wait' EXIT INT TERM; \
		DEBUG=1 POLICYHUB_LOCAL_LOGIN=1 $(BIN)/python manage.py runserver 127.0.0.1:8000

test: $(VENV)/.dev ## the whole suite on throwaway PostgreSQL and Redis started on loopback
	@$(BIN)/python -m tests.support.preflight
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check: $(VENV)/.dev ## Django deploy checks with production settings, and no pending migrations
	DEBUG=0 SECRET_KEY=check-$$(head -c 48 /dev/urandom | base64 | tr -d '/+=') \
		POLICYHUB_KEK=$$($(BIN)/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
		ALLOWED_HOSTS=policyhub.example.com $(BIN)/python manage.py check --deploy --fail-level WARNING
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run

bench: $(VENV)/.dev ## snapshot build and decide() throughput on 10,000 routes and 100,000 identities
	$(BIN)/python -m benchmarks.bench_policy

bench-api: $(VENV)/.dev ## POST decisions/check through gunicorn (2 workers) under wrk on PostgreSQL at full scale: req/s, p50/p99
	$(BIN)/python -m benchmarks.bench_api $(BENCH_ARGS)

bench-proxies: $(VENV)/.runtime ## HAProxy and lighttpd req/s with the rendered policy vs the bare proxy (wrk, loopback)
	$(BIN)/python -m benchmarks.bench_proxies $(BENCH_ARGS)

bench-deploy: $(VENV)/.dev ## deploy request to new config live on real HAProxy and lighttpd with 1,000 routes (median of 5)
	$(BIN)/python -m benchmarks.bench_deploy $(BENCH_ARGS)

bench-deprovision: $(VENV)/.dev ## Okta deactivate event hook to the user's token refused at real HAProxy and lighttpd (median of 5)
	$(BIN)/python -m benchmarks.bench_deprovision $(BENCH_ARGS)

bench-sync: $(VENV)/.dev ## full and incremental Okta import of 100,000 users, 5,000 groups, 500,000 memberships (fake Okta)
	$(BIN)/python -m benchmarks.bench_sync $(BENCH_ARGS)

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) var

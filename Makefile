# The registry's commands. `make help` lists them; CI calls the same targets people use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

# make test runs against the local PostgreSQL and Redis unless told otherwise.
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/rempart)
TEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/14)
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	SECRET_KEY=test-only-secret-key KEY_PEPPER=test-only-pepper DEBUG=0 SECURE_SSL_REDIRECT=0 \
	RECEIPT_SIGNING_KEY=dGVzdC1vbmx5LXJlY2VpcHQta2V5LTAwMDAwMDAwMDA=

.PHONY: help install system-deps run test lint format bench bench-db limits loadtest migrations \
	screenshots clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml deploy/requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -c deploy/requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create the virtual environment and install the pinned dependencies

# Debian puts nginx in /usr/sbin, which is not on every user's PATH.
system-deps: ## Check for chromium, wrk, nginx and ffmpeg; install them as root, else print how
	@PATH="$$PATH:/usr/sbin:/sbin" .ci/system-deps

run: install ## Set up and serve on http://127.0.0.1:8000 (SQLite and inline tasks unless configured)
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --no-input
	DEBUG=$${DEBUG:-1} $(PY) manage.py partner_create demo --scopes match,sync,feedback,submit --if-absent
	DEBUG=$${DEBUG:-1} $(PY) manage.py runserver $(HOST):$(PORT)

test: install system-deps ## Run the whole suite against PostgreSQL and Redis
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff, mypy --strict, and a check that no migration is missing
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=1 $(VENV)/bin/mypy .
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

format: install ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install ## Benchmark the match index against faiss and brute force; prints a table
	$(PY) -m pip install --quiet -c deploy/requirements.lock -e '.[bench]'
	$(PY) -m tests.benchmarks.bench_matching $(BENCH_ARGS)

bench-db: install ## Benchmark start-up load from PostgreSQL, key checks and hash_match at 10M hashes
	$(PY) -m tests.benchmarks.bench_service $(BENCH_ARGS)

limits: install ## Measure what PDQ matching catches and misses on generated photos (docs/limits.md)
	$(PY) -m tests.benchmarks.pdq_limits $(LIMITS_ARGS)

# The load test creates, then drops, its own database on this server and empties this Redis db.
LOADTEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/13)

loadtest: install system-deps ## Load test as in production (gunicorn, 1,000,000 hashes, wrk); prints a table
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(LOADTEST_REDIS_URL) \
		$(PY) -m tests.load.run $(LOADTEST_ARGS)

migrations: install ## Write migrations for model changes
	DEBUG=1 $(PY) manage.py makemigrations

screenshots: install system-deps ## Save the people's pages at phone and desktop widths into docs/screenshots/
	$(PY) -m tests.browser.screenshots

clean: ## Remove the virtual environment and local data
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache

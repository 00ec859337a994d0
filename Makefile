# The registry's commands. `make help` lists them; CI calls the same targets people use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The development settings (DEBUG on, generated secrets) that make run writes once and that
# manage.py, the server and Celery read (registry/dotenv.py); the environment wins over it.
DOTENV_PATH ?= .env
RUN_ENV := DOTENV_PATH=$(DOTENV_PATH) HOST=$(HOST) PORT=$(PORT)
DEMO_SCOPES := match,sync,feedback,submit

# make test runs against the local PostgreSQL and Redis unless told otherwise.
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/rempart)
TEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/14)
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	SECRET_KEY=test-only-secret-key KEY_PEPPER=test-only-pepper DEBUG=0 SECURE_SSL_REDIRECT=0 \
	RECEIPT_SIGNING_KEY=dGVzdC1vbmx5LXJlY2VpcHQta2V5LTAwMDAwMDAwMDA= DOTENV_PATH=
# (tests/environment.py gives a bare `pytest` the same values.)

define DEMO_KEY_ISSUE
from registry.models import Partner
from registry.services import partner_create, partner_key_issue
demo = Partner.objects.filter(name="demo").first() or partner_create(name="demo", actor="staff:cli")
print(partner_key_issue(partner=demo, scopes="$(DEMO_SCOPES)".split(","), actor="staff:cli").raw)
endef
export DEMO_KEY_ISSUE

.PHONY: help install video system-deps env-file run superuser demo-key test lint format bench bench-db \
	limits loadtest migrations screenshots clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml deploy/requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -c deploy/requirements.lock -e '.[server,dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create the virtual environment and install the pinned dependencies

# The reference vPDQ hasher (PyPI's vpdq) compiles against the FFmpeg libraries that
# system-deps installs, so it is an extra of its own: make run needs neither.
VIDEO_STAMP := $(VENV)/.video-installed

$(VIDEO_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c deploy/requirements.lock -e '.[server,dev,video]'
	@touch $(VIDEO_STAMP)

video: install system-deps $(VIDEO_STAMP) ## Install the reference vPDQ hasher (the video tests, limits and client)

# Debian puts nginx in /usr/sbin, which is not on every user's PATH.
system-deps: ## Check for chromium, wrk, nginx, ffmpeg and FFmpeg's headers; install them as root, else print how
	@PATH="$$PATH:/usr/sbin:/sbin" .ci/system-deps

env-file: install ## Write the development settings to .env (DEBUG on, new secrets) unless it exists
	$(if $(DOTENV_PATH),@$(PY) -m registry.dotenv $(DOTENV_PATH))

run: env-file ## Set up and serve on http://127.0.0.1:8000 (HOST, PORT; SQLite, inline tasks unless configured)
	$(RUN_ENV) $(PY) manage.py migrate --no-input
	$(RUN_ENV) $(PY) manage.py partner_create demo --scopes $(DEMO_SCOPES) --if-absent
	$(RUN_ENV) $(PY) manage.py runserver $(HOST):$(PORT)

# With DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD set, it asks nothing.
superuser: env-file ## Create an admin account for the local site (asks a name and a password)
	$(RUN_ENV) $(PY) manage.py migrate --no-input --verbosity 0
	$(RUN_ENV) $(PY) manage.py createsuperuser $(if $(DJANGO_SUPERUSER_PASSWORD),--no-input --email "")

demo-key: env-file ## Issue a new API key for the demo partner (printed once; old keys still work)
	$(RUN_ENV) $(PY) manage.py migrate --no-input --verbosity 0
	@$(RUN_ENV) $(PY) manage.py shell --no-imports -c "$$DEMO_KEY_ISSUE"

test: install system-deps video ## Run the whole suite against PostgreSQL and Redis
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff, mypy --strict, and a check that no migration is missing
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=1 $(VENV)/bin/mypy .
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

format: install ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install system-deps video ## Benchmark the match index against faiss and brute force, and a 600-frame video; prints tables
	$(PY) -m pip install --quiet -c deploy/requirements.lock -e '.[bench]'
	$(PY) -m tests.benchmarks.bench_matching $(BENCH_ARGS)

bench-db: install ## Benchmark start-up load from PostgreSQL, key checks and hash_match at 10M hashes
	$(PY) -m tests.benchmarks.bench_service $(BENCH_ARGS)

# The derived-view half downloads its real photos once into .data/photos (tests/photos.py), and
# the video half the sample videos of the same packages.
limits: install system-deps video ## Measure what PDQ, its derived views and vPDQ (videos) catch and falsely match (docs/limits.md)
	$(PY) -m tests.benchmarks.pdq_limits $(PDQ_LIMITS_ARGS)
	$(PY) -m tests.benchmarks.derivative_limits $(LIMITS_ARGS)
	$(PY) -m tests.benchmarks.video_limits $(VIDEO_LIMITS_ARGS)

# The load test creates, then drops, its own database on this server and empties this Redis db.
LOADTEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/13)

loadtest: install system-deps video ## Load test as in production (registry.serve, 1,000,000 hashes, wrk); prints a table
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(LOADTEST_REDIS_URL) \
		$(PY) -m tests.load.run $(LOADTEST_ARGS)

migrations: install ## Write migrations for model changes
	DEBUG=1 $(PY) manage.py makemigrations

screenshots: install system-deps ## Save the people's pages at phone and desktop widths into docs/screenshots/
	$(PY) -m tests.browser.screenshots

clean: ## Remove the virtual environment and local data
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache

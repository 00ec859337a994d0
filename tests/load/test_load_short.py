"""The load test, short: the production-like server under match calls, with writes alongside.

The same setup as ``make loadtest`` (tests/load/harness.py: two web processes of
``python -m registry.serve`` behind nginx with the deploy site, PostgreSQL, Redis, a Celery
worker, wrk) on 20,000 registered PDQ-shaped hashes (no real pool to build), each scenario for
a few seconds. It asserts what must hold whatever the machine: no request fails, no photo
withdrawn during the load matches afterwards, every match call answered has its usage record
(written in batches by the web processes), and both web processes answered match calls; then
the same under gunicorn, which ``make loadtest`` compares with the deployed server. The rates
and latencies are printed, never asserted (``make loadtest`` measures them).
"""

from __future__ import annotations

import shutil
import time

import pytest
from django.conf import settings

from tests.load.harness import Outcome, production_service, run_scenario

pytestmark = pytest.mark.load


def _server_url() -> str:
    database = settings.DATABASES["default"]
    user = database.get("USER") or "postgres"
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{database['NAME']}"


def _print(outcome: Outcome) -> None:
    print(
        f"{outcome.scenario}: {outcome.rate:,.0f} req/s, p50 {outcome.p50_ms:.1f} ms, "
        f"p99 {outcome.p99_ms:.1f} ms, {outcome.registrations} registrations and "
        f"{outcome.withdrawals} withdrawals alongside"
    )


def test_match_calls_under_load_never_fail_and_withdrawn_photos_never_match() -> None:
    if shutil.which("wrk") is None:
        pytest.fail("the load test needs wrk (make system-deps installs it)")
    if not settings.REDIS_URL or not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.fail("the load test runs on PostgreSQL and Redis (DATABASE_URL, REDIS_URL)")
    with production_service(
        hashes=20_000,
        data="pdq",
        server_url=_server_url(),
        redis_url=settings.REDIS_URL,
        workers=1,
        threads=4,
        servers=2,
        database_suffix="_loadshort",
        gunicorn=True,
    ) as service:
        outcomes = [
            run_scenario(service, scenario="bare endpoint", batch=0, seconds=2, connections=8),
            run_scenario(service, scenario="single-hash match", batch=1, seconds=4, connections=8),
            run_scenario(
                service, scenario="batch match, 100 hashes", batch=100, seconds=4, connections=2
            ),
            run_scenario(
                service,
                scenario="single-hash match, 1 web process",
                batch=1,
                seconds=2,
                connections=8,
                one_process=True,
            ),
        ]
        # Both web processes answered match calls through nginx.
        assert all(
            b'"POST /api/v1/match ' in access_log.read_bytes() for access_log in service.access_logs
        )
        # Usage records are written in batches by each worker: none is lost under load. Both
        # sides are read again until they agree: a worker writes its access-log line after
        # the answer, so the log can trail the records by a moment, as the records trail it.
        deadline = time.monotonic() + 30
        while True:
            answered = service.match_calls_answered()
            recorded = service.match_calls_recorded()
            if recorded == answered or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert recorded == answered
        # The same application under gunicorn, the server the load test compares (its calls
        # leave no line in the deployed server's access logs, so they come after the count
        # above).
        outcomes.append(
            run_scenario(
                service,
                scenario="gunicorn: single-hash match",
                batch=1,
                seconds=2,
                connections=8,
                base=service.base_gunicorn,
            )
        )
    for outcome in outcomes:
        _print(outcome)
        assert outcome.requests > 0
        assert (outcome.status_errors, outcome.socket_errors) == (0, 0)
        assert outcome.write_errors == []
        assert outcome.registrations >= outcome.withdrawals >= 1
        assert outcome.matched_after_withdrawal == 0

"""Redis stopped, both the cache (rate limits) and the Celery broker: the registry keeps working.

The service runs as in production on the test database and its own redis-server: the web
server (``python -m registry.serve``), a Celery worker with beat, a partner's webhook endpoint.
With Redis down, registrations, matches and withdrawals through the API still succeed: PostgreSQL is
written first, rate limits let requests through (and say so in the log), and the changes wait
in the change sequence. Once Redis is back, beat's sweep turns them into webhooks, each
delivered once. tests/registry/webhooks/test_worker.py proves the broker half on the services alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from registry.models import Case, Partner, WebhookDelivery
from tests.conftest import PartnerPersona
from tests.factories import case_creation_body, dihedral_payload, random_dihedral
from tests.processes import (
    Answer,
    VerifyingReceiver,
    free_port,
    processes_in,
    request,
    service_env,
    start_redis,
    start_web,
    start_worker,
    suite_database_url,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SWEEP_DONE = re.compile(r"webhook_deliveries_sweep_task\[[0-9a-f-]+\] succeeded")


def _register(base: str) -> tuple[dict[str, Any], str]:
    image = dihedral_payload(random_dihedral())
    answer = request(
        base,
        "POST",
        "/api/v1/cases",
        case_creation_body([image]),
    )
    assert answer.status == 201, answer.body
    hashes: list[str] = image["hashes"]  # type: ignore[assignment]
    return answer.json(), hashes[2]  # a rotated upload


def _match(base: str, persona: PartnerPersona, value: str) -> Answer:
    return request(
        base, "POST", "/api/v1/match", {"hashes": [value], "purpose": "publish"}, persona.auth
    )


def _matches(base: str, persona: PartnerPersona, value: str) -> int:
    answer = _match(base, persona, value)
    assert answer.status == 200, answer.body
    return len(answer.json()["results"][0]["matches"])


def _sweeps(worker_log: Path) -> int:
    return len(SWEEP_DONE.findall(worker_log.read_text()))


def _outbox() -> str:
    return repr(list(WebhookDelivery.objects.values_list("event_type", "status", "last_error")))


def test_with_redis_down_cases_and_matches_succeed_and_webhooks_follow_once_it_is_back(
    transactional_db: None,
    partner_a: PartnerPersona,
    webhooked: Partner,
    verifying_receiver: VerifyingReceiver,
    tmp_path: Path,
) -> None:
    with processes_in(tmp_path) as processes:
        port = free_port()
        redis = start_redis(processes, port)
        env = service_env(
            DATABASE_URL=suite_database_url(),
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/1",
            WEBHOOK_SWEEP_SECONDS="1",
            WEBHOOK_TIMEOUT_SECONDS="5",
        )
        base = start_web(processes, env)
        worker_log = start_worker(processes, env, beat=True)
        first, first_hash = _register(base)
        verifying_receiver.wait_for(1, _outbox)
        wait_until(lambda: _matches(base, partner_a, first_hash) == 1, what="the first match")

        processes.stop(redis)  # the cache and the broker go down together
        second, second_hash = _register(base)
        wait_until(lambda: _matches(base, partner_a, second_hash) == 1, what="the second match")
        withdrawn = request(
            base,
            "POST",
            "/api/v1/cases/withdraw",
            {"case_reference": first["case_reference"], "case_secret": first["case_secret"]},
        )
        assert withdrawn.status == 200, withdrawn.body
        assert withdrawn.json()["status"] == "withdrawn"
        assert _matches(base, partner_a, first_hash) == 0
        assert Case.objects.get(reference=second["case_reference"]).is_active
        log = (tmp_path / "web.log").read_text()
        assert "rate-limit cache unreachable; cases.create not limited" in log
        assert f"rate-limit cache unreachable; partner {webhooked.pk} not limited" in log
        assert "could not enqueue the webhook dispatcher; the sweep will" in log
        assert len(verifying_receiver.snapshot()) == 1  # nothing could be sent meanwhile

        start_redis(processes, port)  # back, empty: the worker reconnects, beat's sweep catches up
        verifying_receiver.wait_for(3, _outbox)
        wait_until(
            lambda: not WebhookDelivery.objects.exclude(status="delivered").exists(),
            what=_outbox,
        )
        swept = _sweeps(worker_log)
        wait_until(lambda: _sweeps(worker_log) >= swept + 2, what="two more sweeps")
        events = verifying_receiver.snapshot()  # the sweeps since have sent nothing again
        assert sorted(event["type"] for event in events) == [
            "image.added",
            "image.added",
            "image.withdrawn",
        ]
        assert all(event["valid"] for event in events)
        assert len({event["id"] for event in events}) == len(events) == 3
        assert set(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == {
            event["id"] for event in events
        }

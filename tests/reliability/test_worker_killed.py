"""A Celery worker killed (SIGKILL, with its pool) in the middle of sending a webhook.

Tasks are acknowledged only once they finish (CELERY_TASK_ACKS_LATE), so the broker still holds
the task of a worker that died: Redis hands it to another worker once the visibility timeout
(BROKER_VISIBILITY_TIMEOUT_SECONDS) has passed. The task runs again, and its effect happens
once: the delivery is recorded delivered once, and the partner, which may have received the
first attempt, receives the same ``webhook-id`` again, the id partners de-duplicate on
(docs/partners.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from registry.models import Partner, WebhookDelivery
from tests.factories import register_case
from tests.processes import (
    VerifyingReceiver,
    free_port,
    processes_in,
    service_env,
    start_redis,
    start_worker,
    suite_database_url,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

WEBHOOK_TIMEOUT_SECONDS = 1
# A claimed delivery is not attempted again before its lease ends: WEBHOOK_TIMEOUT_SECONDS + 30
# (registry.webhooks.outbox.delivery_claim). The broker hands the task over only after that, so the
# second run sends it rather than finding it still claimed.
LEASE_SECONDS = WEBHOOK_TIMEOUT_SECONDS + 30
VISIBILITY_TIMEOUT_SECONDS = LEASE_SECONDS + 4
SEND_RECEIVED = re.compile(
    r"Task registry\.tasks\.webhook_delivery_send_task\[([0-9a-f-]+)\] received"
)


def test_a_task_whose_worker_was_killed_runs_again_and_delivers_once(
    transactional_db: None,
    webhooked: Partner,
    verifying_receiver: VerifyingReceiver,
    web_side_broker: Callable[[str], None],
    tmp_path: Path,
) -> None:
    with processes_in(tmp_path) as processes:
        port = free_port()
        start_redis(processes, port)
        broker = f"redis://127.0.0.1:{port}/0"
        web_side_broker(broker)
        env = service_env(
            DATABASE_URL=suite_database_url(),
            CELERY_BROKER_URL=broker,
            WEBHOOK_TIMEOUT_SECONDS=str(WEBHOOK_TIMEOUT_SECONDS),
            BROKER_VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY_TIMEOUT_SECONDS),
        )
        first_log = start_worker(processes, env, beat=False, name="first")
        first_worker = processes.last
        verifying_receiver.hold(1)  # the partner is slow: the first attempt is still running...

        register_case(images=1)
        verifying_receiver.wait_for(1)
        sent = SEND_RECEIVED.findall(first_log.read_text())
        assert len(sent) == 1
        processes.kill(first_worker)  # ...when its worker dies, pool and all
        verifying_receiver.release()
        delivery = WebhookDelivery.objects.get(partner=webhooked)
        assert (delivery.status, delivery.attempts) == ("pending", 1)

        second_log = start_worker(processes, env, beat=False, name="second")
        wait_until(
            lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="delivered").exists(),
            what=lambda: "the delivery was never completed:\n" + second_log.read_text(),
            timeout=VISIBILITY_TIMEOUT_SECONDS + 60,
        )
        assert SEND_RECEIVED.findall(second_log.read_text()) == sent  # the same task, again
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("delivered", 2)

        events = verifying_receiver.snapshot()
        assert [(event["id"], event["held"]) for event in events] == [
            (delivery.webhook_id, True),
            (delivery.webhook_id, False),
        ]
        assert all(event["valid"] for event in events)
        assert {event["id"] for event in events} == {delivery.webhook_id}  # once, de-duplicated

"""Webhooks end to end: a real Celery worker on Redis delivers signed events to a local receiver.

The test process is the web side: it registers and withdraws through the services, as a request
would, publishing to the broker named in the test (Celery's configuration is switched for the
test). The worker is a separate ``celery -A registry worker`` process on the test database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.models import Partner, WebhookDelivery
from registry.services.cases import case_withdraw
from tests.factories import register_case
from tests.processes import (
    Processes,
    VerifyingReceiver,
    free_port,
    service_env,
    start_redis,
    start_worker,
    suite_database_url,
)


def _outbox() -> str:
    return "outbox: " + repr(
        list(WebhookDelivery.objects.values_list("event_type", "status", "attempts", "last_error"))
    )


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()


def _start_worker(processes: Processes, broker: str, *, beat: bool) -> Path:
    env = service_env(
        DATABASE_URL=suite_database_url(),
        CELERY_BROKER_URL=broker,
        WEBHOOK_SWEEP_SECONDS="1",
        WEBHOOK_TIMEOUT_SECONDS="2",
    )
    return start_worker(processes, env, beat=beat, pool=("--pool=threads", "--concurrency=4"))


def _expect_events(
    events: list[dict[str, Any]], partner: Partner, *, added: int, withdrawn: int
) -> None:
    assert all(event["valid"] for event in events)
    types = [event["type"] for event in events]
    assert sorted(types) == ["image.added"] * added + ["image.withdrawn"] * withdrawn
    # The receiver has an event as soon as it is sent; the worker records the delivery once the
    # answer is back, a moment later on a busy machine: wait for that state, not for a time.
    deadline = time.monotonic() + 30
    while True:
        deliveries = {
            row.webhook_id: row for row in WebhookDelivery.objects.filter(partner=partner)
        }
        delivered = all(
            row.status == WebhookDelivery.Status.DELIVERED for row in deliveries.values()
        )
        if delivered or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {event["id"] for event in events} == set(deliveries)
    assert delivered, _outbox()
    for event in events:
        assert event["data"] == deliveries[event["id"]].payload["data"]
        assert set(event["data"]) == {"id", "scope", "minor_depicted"}  # never a hash


@pytest.mark.slow
def test_a_worker_delivers_signed_added_and_withdrawn_events(
    transactional_db: None,
    webhooked: Partner,
    verifying_receiver: VerifyingReceiver,
    processes: Processes,
    web_side_broker: Callable[[str], None],
) -> None:
    # A broker of its own: no task left on a shared Redis by another run can reach its worker.
    port = free_port()
    start_redis(processes, port)
    broker = f"redis://127.0.0.1:{port}/0"
    web_side_broker(broker)
    _start_worker(processes, broker, beat=False)

    registered = register_case(images=2)
    events = verifying_receiver.wait_for(2, _outbox)
    case_withdraw(case=registered.case)
    events = verifying_receiver.wait_for(4, _outbox)

    _expect_events(events, webhooked, added=2, withdrawn=2)
    assert [event["type"] for event in events[:2]] == ["image.added"] * 2
    added_ids = {event["data"]["id"] for event in events[:2]}
    assert {event["data"]["id"] for event in events[2:]} == added_ids


@pytest.mark.slow
def test_with_the_broker_down_changes_succeed_and_are_delivered_once_it_is_back(
    transactional_db: None,
    webhooked: Partner,
    verifying_receiver: VerifyingReceiver,
    processes: Processes,
    web_side_broker: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    web_side_broker(broker)
    redis = start_redis(processes, port)
    worker_log = _start_worker(processes, broker, beat=True)
    first = register_case(images=1)
    verifying_receiver.wait_for(1, _outbox)

    processes.stop(redis)  # the broker goes down
    caplog.clear()
    started = time.monotonic()
    second = register_case(images=1)
    case_withdraw(case=first.case)
    assert time.monotonic() - started < 5  # no waiting on the broker
    assert caplog.text.count("could not enqueue the webhook dispatcher") == 2
    assert second.case.is_active
    first.case.refresh_from_db()
    assert first.case.status == "withdrawn"
    time.sleep(1.5)
    assert len(verifying_receiver.snapshot()) == 1  # nothing can be delivered meanwhile

    start_redis(processes, port)  # back: the worker reconnects, beat's sweep catches up
    events = verifying_receiver.wait_for(3, _outbox)
    time.sleep(1.5)  # a few more sweeps: nothing is sent twice
    events = verifying_receiver.snapshot()
    _expect_events(events, webhooked, added=2, withdrawn=1)
    assert len({event["id"] for event in events}) == len(events) == 3, worker_log.read_text()

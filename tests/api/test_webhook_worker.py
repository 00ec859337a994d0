"""Webhooks end to end: a real Celery worker on Redis delivers signed events to a local receiver.

The test process is the web side: it registers and withdraws through the services, as a request
would, publishing to the broker named in the test (Celery's configuration is switched for the
test). The worker is a separate ``celery -A registry worker`` process on the test database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from api.models import Partner, WebhookDelivery
from registry.celery import app as celery_app
from registry.services import case_withdraw
from tests.conftest import PartnerPersona
from tests.factories import register_case

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"the end-to-end webhook secret!!!").decode()
SHARED_BROKER = "redis://127.0.0.1:6379/13"
DEADLINE = 30.0  # seconds; a bound, not a timing: each wait normally takes one or two


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class VerifyingReceiver:
    """A partner's endpoint: checks each signature as a partner would, records the events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self
        key = base64.b64decode(SECRET.removeprefix("whsec_"))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook_id = self.headers["webhook-id"]
                timestamp = self.headers["webhook-timestamp"]
                signed = f"{webhook_id}.{timestamp}.".encode() + body
                expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
                offered = [
                    part.split(",", 1)[1].encode()
                    for part in self.headers["webhook-signature"].split()
                    if part.startswith("v1,")
                ]
                valid = any(hmac.compare_digest(expected, sig) for sig in offered)
                fresh = abs(time.time() - int(timestamp)) < 300
                with receiver.lock:
                    receiver.events.append(
                        {"id": webhook_id, "valid": valid and fresh, **json.loads(body)}
                    )
                self.send_response(204 if valid else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rempart"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + DEADLINE
        while len(events := self.snapshot()) < count:
            assert time.monotonic() < deadline, (
                f"only {len(events)} of {count} events arrived; outbox: "
                + repr(
                    list(
                        WebhookDelivery.objects.values_list(
                            "event_type", "status", "attempts", "last_error"
                        )
                    )
                )
            )
            time.sleep(0.05)
        return events

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Processes:
    """Processes this test starts, each stopped by its own id at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Path:
        log = self.logs / f"{name}.log"
        with log.open("ab") as output:
            self.running.append(
                subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
                )
            )
        return log

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.running.remove(process)

    def stop_all(self) -> None:
        for process in list(reversed(self.running)):
            self.stop(process)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def receiver() -> Iterator[VerifyingReceiver]:
    endpoint = VerifyingReceiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def hooked(partner_a: PartnerPersona, receiver: VerifyingReceiver) -> Partner:
    Partner.objects.filter(pk=partner_a.partner.pk).update(
        webhook_url=receiver.url, webhook_secret=SECRET
    )
    return Partner.objects.get(pk=partner_a.partner.pk)


@pytest.fixture
def web_side_broker() -> Iterator[Callable[[str], None]]:
    """Point this process's Celery at a broker, as a web process with CELERY_BROKER_URL is."""
    saved = {name: celery_app.conf[name] for name in ("task_always_eager", "broker_url")}

    def point_at(url: str) -> None:
        celery_app.conf.update(task_always_eager=False, broker_url=url)

    yield point_at
    celery_app.conf.update(saved)


def _worker_env(broker: str) -> dict[str, str]:
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": broker,
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
        "WEBHOOK_SWEEP_SECONDS": "1",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
    }


def _start_worker(processes: Processes, broker: str, *, beat: bool) -> Path:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "registry",
        "worker",
        "--pool=threads",
        "--concurrency=4",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]
    if beat:
        command += ["--beat", f"--schedule={processes.logs / 'beat-schedule'}"]
    log = processes.start("worker", command, _worker_env(broker))
    deadline = time.monotonic() + DEADLINE
    while b" ready." not in log.read_bytes():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return log


def _start_redis(processes: Processes, port: int) -> subprocess.Popen[bytes]:
    processes.start(
        f"redis-{port}",
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        dict(os.environ),
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    return processes.running[-1]


def _expect_events(
    events: list[dict[str, Any]], partner: Partner, *, added: int, withdrawn: int
) -> None:
    assert all(event["valid"] for event in events)
    types = [event["type"] for event in events]
    assert sorted(types) == ["image.added"] * added + ["image.withdrawn"] * withdrawn
    deliveries = {row.webhook_id: row for row in WebhookDelivery.objects.filter(partner=partner)}
    assert {event["id"] for event in events} == set(deliveries)
    assert all(row.status == WebhookDelivery.Status.DELIVERED for row in deliveries.values())
    for event in events:
        assert event["data"] == deliveries[event["id"]].payload["data"]
        assert set(event["data"]) == {"id", "scope", "minor_depicted"}  # never a hash


@pytest.mark.slow
def test_a_worker_delivers_signed_added_and_withdrawn_events(
    transactional_db: None,
    hooked: Partner,
    receiver: VerifyingReceiver,
    processes: Processes,
    web_side_broker: Callable[[str], None],
) -> None:
    web_side_broker(SHARED_BROKER)
    _start_worker(processes, SHARED_BROKER, beat=False)

    registered = register_case(images=2)
    events = receiver.wait_for(2)
    case_withdraw(case=registered.case)
    events = receiver.wait_for(4)

    _expect_events(events, hooked, added=2, withdrawn=2)
    assert [event["type"] for event in events[:2]] == ["image.added"] * 2
    added_ids = {event["data"]["id"] for event in events[:2]}
    assert {event["data"]["id"] for event in events[2:]} == added_ids


@pytest.mark.slow
def test_with_the_broker_down_changes_succeed_and_are_delivered_once_it_is_back(
    transactional_db: None,
    hooked: Partner,
    receiver: VerifyingReceiver,
    processes: Processes,
    web_side_broker: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    web_side_broker(broker)
    redis = _start_redis(processes, port)
    worker_log = _start_worker(processes, broker, beat=True)
    first = register_case(images=1)
    receiver.wait_for(1)

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
    assert len(receiver.snapshot()) == 1  # nothing can be delivered meanwhile

    _start_redis(processes, port)  # back: the worker reconnects, beat's sweep catches up
    events = receiver.wait_for(3)
    time.sleep(1.5)  # a few more sweeps: nothing is sent twice
    events = receiver.snapshot()
    _expect_events(events, hooked, added=2, withdrawn=1)
    assert len({event["id"] for event in events}) == len(events) == 3, worker_log.read_text()

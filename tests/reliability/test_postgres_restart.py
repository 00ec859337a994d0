"""PostgreSQL stopped and started again under a stream of registrations, twice: a fast shutdown,
then a crash (``immediate``).

The service runs as in production, on its own PostgreSQL cluster and Redis: the web server
(``python -m registry.serve``), a Celery worker with beat, a partner's webhook endpoint. A client
registers cases through the public API without pause, each with its own Idempotency-Key, and
retries a failed request with the same key until it succeeds. Every answer is a 201 or a clean
503 (or a refused connection); no case is half-written; each key made exactly one case; and the
web processes, their match indexes and the worker recover on their own.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.utils import translation
from django.utils.html import escape

from registry.web.errors import error_message
from tests.factories import case_creation_body, dihedral_payload, random_dihedral
from tests.processes import (
    READY_HEADERS,
    ROOT,
    WEBHOOK_SECRET,
    Answer,
    PostgresCluster,
    Processes,
    VerifyingReceiver,
    free_port,
    migrate,
    postgres_cluster,
    processes_in,
    request,
    service_env,
    start_redis,
    start_web,
    start_worker,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

WEB_WORKERS = 2


def _creation(images: int) -> dict[str, Any]:
    return case_creation_body([dihedral_payload(random_dihedral()) for _ in range(images)])


class Stream:
    """Clients each registering cases one after the other, retrying each with its own key."""

    def __init__(self, base: str, clients: int) -> None:
        self.base = base
        self.attempts: list[tuple[str, Answer | None]] = []
        # Idempotency-Key -> (case reference, photos, the first photo's first hash)
        self.created: dict[str, tuple[str, int, str]] = {}
        self.abandoned: list[str] = []
        self.stopping = threading.Event()
        self.aborting = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=120)

    def run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            number += 1
            images = 1 + 2 * (number % 2)
            body = _creation(images)
            key = str(uuid.uuid4())
            deadline = time.monotonic() + 90
            while True:  # A key once used is retried until it succeeds, even when stopping.
                try:
                    answer: Answer | None = request(
                        self.base, "POST", "/api/v1/cases", body, {"Idempotency-Key": key}
                    )
                except OSError:
                    answer = None
                with self.lock:
                    self.attempts.append((key, answer))
                if answer is not None and answer.status == 201:
                    reference = answer.json()["case_reference"]
                    with self.lock:
                        self.created[key] = (reference, images, body["images"][0]["hashes"][0])
                    break
                if time.monotonic() > deadline or self.aborting.is_set():
                    self.abandoned.append(key)
                    break
                time.sleep(0.2)

    def successes(self) -> int:
        with self.lock:
            return len(self.created)

    def failures(self) -> int:
        with self.lock:
            return sum(1 for _, answer in self.attempts if answer is None or answer.status != 201)


@dataclass
class Service:
    cluster: PostgresCluster
    database: str
    base: str
    key: str
    processes: Processes
    web: subprocess.Popen[bytes]
    web_log: Path
    receiver: VerifyingReceiver


@pytest.fixture
def service(tmp_path: Path, receiver: VerifyingReceiver) -> Iterator[Service]:
    with postgres_cluster() as cluster, processes_in(tmp_path) as processes:
        cluster.create_database("rempart")
        database = cluster.url("rempart")
        redis_port = free_port()
        start_redis(processes, redis_port)
        env = service_env(
            DATABASE_URL=database,
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/1",
            PUBLIC_CASE_RATE="100000/m",
            WEBHOOK_SWEEP_SECONDS="1",
            WEBHOOK_TIMEOUT_SECONDS="5",
        )
        migrate(env)
        created = subprocess.run(
            [sys.executable, "manage.py", "partner_create", "Platform A", "--scopes", "match"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        key = created.stdout.strip().splitlines()[-1]
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(
                "UPDATE api_partner SET webhook_url = %s, webhook_secret = %s",
                [receiver.url, WEBHOOK_SECRET],
            )
        base = start_web(processes, env, workers=WEB_WORKERS)
        web = processes.last
        start_worker(processes, env, beat=True)
        yield Service(
            cluster=cluster,
            database=database,
            base=base,
            key=key,
            processes=processes,
            web=web,
            web_log=tmp_path / "web.log",
            receiver=receiver,
        )


@pytest.fixture
def receiver() -> Iterator[VerifyingReceiver]:
    endpoint = VerifyingReceiver()
    yield endpoint
    endpoint.close()


def _check_pages_during_the_outage(base: str) -> None:
    """While PostgreSQL is down: 503 with Retry-After, as the error body or a translated page."""
    ready = request(base, "GET", "/ready")
    assert ready.status == 503
    assert ready.json()["error"]["code"] == "service_unavailable"
    for language in ("en", "fr"):  # the home page and its help stay readable
        home = request(base, "GET", "/", headers={"Accept-Language": language})
        assert home.status == 200
        assert 'href="tel:3018"' in home.body.decode()
    form = request(base, "GET", "/status")  # no database needed: sets the CSRF cookie
    assert form.status == 200
    token = re.search(r"csrftoken=([^;]+)", form.headers["set-cookie"])
    assert token is not None
    page = request(
        base,
        "POST",
        "/status",
        form={"case_reference": "RMP-00000-00000", "case_secret": "AAAA-BBBB-CCCC-DDDD"},
        headers={
            "Cookie": f"csrftoken={token[1]}",
            "X-CSRFToken": token[1],
            "Accept-Language": "fr",
        },
    )
    assert page.status == 503
    assert page.headers["retry-after"].isdigit()
    assert "text/html" in page.headers["content-type"]
    with translation.override("fr"):
        message = error_message("service_unavailable", {})
    assert escape(message) in page.body.decode()
    for headers in ({}, {"Idempotency-Key": str(uuid.uuid4())}):
        script = request(
            base,
            "POST",
            "/register/submit",
            _creation(1),
            {"Cookie": f"csrftoken={token[1]}", "X-CSRFToken": token[1], **headers},
        )
        assert script.status == 503
        assert script.headers["retry-after"].isdigit()
        assert script.json()["error"]["code"] == "service_unavailable"


def _outage(service: Service, stream: Stream, mode: str, *, check_pages: bool) -> None:
    successes, failures = stream.successes(), stream.failures()
    service.cluster.stop(mode)
    try:
        wait_until(lambda: stream.failures() >= failures + 6, what="the outage to be seen")
        if check_pages:
            _check_pages_during_the_outage(service.base)
    finally:
        service.cluster.start()
    wait_until(lambda: stream.successes() >= successes + 6, what="registrations to resume")


def _rows(database: str) -> list[tuple[Any, ...]]:
    """Per case: its consent records, images, hashes, added changes and creation events."""
    with psycopg.connect(database) as connection:
        return connection.execute(
            """
            SELECT c.reference,
                (SELECT count(*) FROM registry_consentrecord r WHERE r.case_id = c.id),
                (SELECT count(*) FROM registry_registeredimage i WHERE i.case_id = c.id),
                (SELECT count(*) FROM registry_imagehash h
                    JOIN registry_registeredimage i ON i.id = h.image_id WHERE i.case_id = c.id),
                (SELECT count(*) FROM registry_change ch
                    JOIN registry_registeredimage i ON i.id = ch.image_id
                    WHERE i.case_id = c.id AND ch.kind = 'added'),
                (SELECT count(*) FROM registry_auditevent a
                    WHERE a.subject = 'case:' || c.reference AND a.action = 'case.created')
            FROM registry_case c ORDER BY c.id
            """
        ).fetchall()


def test_registrations_survive_postgres_restarts_and_each_key_makes_one_case(
    service: Service,
) -> None:
    stream = Stream(service.base, clients=3)
    stream.start()
    try:
        wait_until(lambda: stream.successes() >= 6, what="the first registrations")
        _outage(service, stream, "fast", check_pages=True)
        _outage(service, stream, "immediate", check_pages=False)
    except BaseException:
        stream.aborting.set()
        raise
    finally:
        stream.stopping.set()
        stream.join()

    # Every answer was a 201 with the case, or a clean 503, or no connection at all.
    assert stream.abandoned == []
    unclean = []
    for _key, answer in stream.attempts:
        if answer is None or answer.status == 201:
            continue
        body = answer.json() if "application/json" in answer.headers["content-type"] else None
        if not (
            answer.status == 503
            and body is not None
            and body["error"]["code"] == "service_unavailable"
            and set(body["error"]) == {"code", "message", "details"}
            and answer.headers.get("retry-after", "").isdigit()
        ):
            unclean.append((answer.status, answer.body[:200]))
    assert unclean == []
    assert sum(1 for _, answer in stream.attempts if answer and answer.status == 503) >= 12

    # Each key made exactly one case, and every case is whole.
    created = stream.created
    rows = _rows(service.database)
    assert len(rows) == len(created) == len({reference for reference, _, _ in created.values()})
    images_of = {reference: images for reference, images, _ in created.values()}
    assert {row[0]: row[1:] for row in rows} == {
        reference: (1, images, 8 * images, images, 1) for reference, images in images_of.items()
    }
    with psycopg.connect(service.database) as connection:
        records = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status_code = 201) FROM api_idempotencyrecord"
        ).fetchone()
    assert records == (len(created), len(created))
    verified = subprocess.run(
        [sys.executable, "manage.py", "audit_verify"],
        cwd=ROOT,
        env=service_env(DATABASE_URL=service.database),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # The same server and its first workers serve on: their indexes caught up by themselves.
    assert service.web.poll() is None
    assert service.web_log.read_text().count("Spawning worker-") == WEB_WORKERS
    last_hash = list(created.values())[-1][2]
    for _ in range(WEB_WORKERS * 3):  # the requests spread over both workers
        wait_until(
            lambda: (
                request(service.base, "GET", "/ready", headers=READY_HEADERS)
                .json()
                .get("changes_behind")
                == 0
            ),
            what="the match index to catch up",
        )
        matched = request(
            service.base,
            "POST",
            "/api/v1/match",
            {"hashes": [last_hash], "purpose": "publish"},
            {"Authorization": f"Bearer {service.key}"},
        )
        assert matched.status == 200
        assert len(matched.json()["results"][0]["matches"]) == 1

    # The worker and beat recovered too: every photo's webhook arrived, once.
    images = sum(images_of.values())
    events = service.receiver.wait_for(images)
    assert len({event["id"] for event in events}) == len(events) == images
    assert all(event["valid"] and event["type"] == "image.added" for event in events)

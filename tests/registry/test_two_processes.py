"""Two real web processes: a new hash matches in each within a second, a withdrawal never does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from registry.services import case_withdraw
from tests.conftest import PartnerPersona
from tests.factories import register_case

ROOT = Path(__file__).resolve().parents[2]
FRESHNESS_BOUND = 1.0  # seconds: the registry's promise, not a benchmark


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _match(base: str, key: str, value: str) -> list[Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/api/v1/match",
        data=json.dumps({"hashes": [value], "purpose": "publish"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        matches: list[Any] = json.loads(response.read())["results"][0]["matches"]
        return matches


@pytest.fixture
def two_servers(transactional_db: None) -> Iterator[list[str]]:
    """Two gunicorn servers, one worker each, on the test database: two separate indexes."""
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "WEB_CONCURRENCY": "1",
        "INDEX_POLL_MS": "100",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    processes: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    for _ in range(2):
        port = _free_port()
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "deploy/gunicorn.conf.py",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "registry.wsgi",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        bases.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        for base in bases:
            while True:
                try:
                    if _get(f"{base}/ready")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "a server never became ready"
                time.sleep(0.2)
        yield bases
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


@pytest.mark.slow
def test_new_hashes_match_in_every_process_within_a_second_and_withdrawals_never(
    partner_a: PartnerPersona, two_servers: list[str]
) -> None:
    for _ in range(3):
        registered = register_case(images=1)
        committed = time.monotonic()
        query = registered.images[0].hashes[3].hex()  # a rotated upload
        for base in two_servers:
            while not _match(base, partner_a.raw_key, query):
                assert time.monotonic() - committed < FRESHNESS_BOUND, f"{base} too slow"
                time.sleep(0.02)
        case_withdraw(case=registered.case)
        for base in two_servers:  # at once: no waiting for the followers
            assert _match(base, partner_a.raw_key, query) == []

    withdrawn = time.monotonic()
    for base in two_servers:
        while (body := _get(f"{base}/ready")[1])["changes_behind"]:
            assert time.monotonic() - withdrawn < FRESHNESS_BOUND, f"{base} fell behind"
            time.sleep(0.02)
        assert body["ready"] is True
        assert body["index_size"] == 0  # every case withdrawn, and the followers caught up

"""Two real web processes: a new hash matches in each within a second, a withdrawal never does."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.services.cases import case_withdraw
from tests.conftest import PartnerPersona
from tests.factories import register_case
from tests.processes import (
    READY_HEADERS,
    processes_in,
    service_env,
    start_web,
    suite_database_url,
)

FRESHNESS_BOUND = 1.0  # seconds: the registry's promise, not a benchmark


def _get(url: str) -> tuple[int, Any]:
    try:
        operator = urllib.request.Request(url, headers=READY_HEADERS)  # noqa: S310 - loopback
        with urllib.request.urlopen(operator, timeout=5) as response:  # noqa: S310 - loopback
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
def two_servers(transactional_db: None, tmp_path: Path) -> Iterator[list[str]]:
    """Two web servers (``python -m registry.serve``), one worker each, on the test database:
    two separate indexes."""
    env = service_env(DATABASE_URL=suite_database_url())
    with processes_in(tmp_path) as processes:
        yield [start_web(processes, env, name=f"web-{number}") for number in range(2)]


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

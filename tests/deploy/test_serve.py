"""The deployed web server, ``python -m registry.serve`` (granian), as systemd runs it.

One real server of two workers on the test database: the match index is loaded once, in the
main process, before the workers fork; each worker follows the change sequence by itself;
SIGHUP (``systemctl reload``) reloads the index and replaces the workers while the server
answers; SIGTERM (``systemctl stop``) lets each worker write the match call records it still
holds, so every call answered is counted.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from registry.models import MatchCall
from tests.conftest import PartnerPersona
from tests.factories import register_case
from tests.processes import (
    processes_in,
    request,
    service_env,
    start_web,
    suite_database_url,
    wait_until,
)

pytestmark = pytest.mark.slow

LOADED = "match index loaded from the database"
FROZEN = re.compile(r"(\d+) objects frozen before the workers fork")


class _Calls:
    """Match calls to the server, counted: each must leave one MatchCall row."""

    def __init__(self, base: str, partner: PartnerPersona) -> None:
        self.base, self.partner, self.made = base, partner, 0

    def matches(self, value: str) -> int:
        body = {"hashes": [value], "purpose": "publish"}
        answer = request(self.base, "POST", "/api/v1/match", body, self.partner.auth)
        assert answer.status == 200, answer.body
        self.made += 1
        return len(answer.json()["results"][0]["matches"])


def test_one_index_before_the_fork_reloaded_on_sighup_and_every_call_counted_on_sigterm(
    transactional_db: None, tmp_path: Path, partner_a: PartnerPersona
) -> None:
    env = service_env(DATABASE_URL=suite_database_url(), WEB_ACCESS_LOG="", LOG_LEVEL="INFO")
    log = tmp_path / "web.log"
    with processes_in(tmp_path) as processes:
        calls = _Calls(start_web(processes, env, workers=2), partner_a)
        server = processes.last
        assert log.read_text().count(LOADED) == 1  # in the main process, not once a worker

        # Registered after the fork: found through the workers' own followers.
        query = register_case(images=1).images[0].hashes[0].hex()
        for _ in range(6):  # the calls spread over both workers
            wait_until(lambda: calls.matches(query) == 1, what="the new photo")

        server.send_signal(signal.SIGHUP)
        wait_until(
            lambda: (
                log.read_text().count(LOADED) == 2
                and log.read_text().count("Stopped old worker-") == 2
            ),
            what=lambda: "both workers replaced:\n" + log.read_text()[-3000:],
        )
        assert server.poll() is None
        for _ in range(20):  # then stopped at once: their records are still in the workers
            assert calls.matches(query) == 1
        processes.stop(server)
        assert server.returncode == 0, log.read_text()[-3000:]

    text = log.read_text()
    assert "Granian shutdown completed" in text
    # Django and the application are out of the workers' collector, at start and on reload.
    frozen = [int(count) for count in FROZEN.findall(text)]
    assert len(frozen) == 2, frozen
    assert min(frozen) > 50_000, frozen
    assert "Traceback" not in text
    # Every call has its record, those the workers wrote on their way out included.
    assert MatchCall.objects.count() == calls.made

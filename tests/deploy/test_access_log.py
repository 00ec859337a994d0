"""The access log holds no value a client sent: the deployed server's (``python -m
registry.serve``, registry.access_log.AccessLog) and gunicorn's (deploy/gunicorn.conf.py).

A real server serves requests carrying a hash, a key and a case secret in their query strings
and paths; its access log is then read whole: the requests are there, the values are not, nor
the client's address.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.access_log import _Writer, logged_path
from tests.conftest import PartnerPersona
from tests.factories import random_hash
from tests.processes import (
    processes_in,
    request,
    service_env,
    start_web,
    suite_database_url,
    wait_until,
)

HASH = random_hash().hex()
SECRET = "7K2Q-9XWD-M4TB-R8VN"  # the shape of a case secret
CURSOR = "eyJzZXF1ZW5jZSI6IDQyLCAicGFydG5lciI6IDN9"


@pytest.fixture(params=["granian", "gunicorn"])
def server(
    request: pytest.FixtureRequest, transactional_db: None, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "access.log"
    env = service_env(
        DATABASE_URL=suite_database_url(), GUNICORN_ACCESS_LOG=str(log), WEB_ACCESS_LOG=str(log)
    )
    with processes_in(tmp_path) as processes:
        yield start_web(processes, env, server=request.param), log


def test_the_access_log_holds_no_query_string_hash_key_or_secret(
    server: tuple[str, Path], partner_a: PartnerPersona
) -> None:
    base, log = server
    key = partner_a.raw_key
    sent = [
        ("POST", f"/api/v1/match?hash={HASH}", {"hashes": [HASH], "purpose": "publish"}),
        ("POST", f"/api/v1/match?key={key}", {"hashes": [HASH], "purpose": "publish"}),
        ("GET", f"/api/v1/hashes/changes?cursor={CURSOR}&limit=5", None),
        ("POST", f"/api/v1/cases/status?case_secret={SECRET}", {"case_reference": "R"}),
        ("GET", f"/api/v1/{HASH}", None),
        ("GET", f"/api/v1/match/{key}", None),
        ("GET", f"/status/{SECRET}", None),
        ("GET", f"/{CURSOR}", None),
        ("GET", f"/ready?token={key}", None),
    ]
    for method, path, body in sent:
        answer = request(base, method, path, body, headers=partner_a.auth)
        assert answer.status < 500, (path, answer.body[:200])

    wait_until(
        lambda: '"GET /ready?[query] HTTP/1.1"' in log.read_text(),  # the last one
        what=lambda: "the access log to hold every request:\n" + log.read_text(),
    )
    text = log.read_text()
    for value in (HASH, key, key.split("_")[-1], SECRET, CURSOR, "hash=", "cursor=", "limit="):
        assert value not in text, value
    assert "127.0.0.1" not in text  # no client address
    # One line a request, in gunicorn's format: request line, status, bytes, time.
    lines = text.splitlines()
    polls = [line for line in lines if line.startswith('"GET /ready HTTP/1.1" ')]  # start_web's
    assert len(lines) == len(sent) + len(polls)
    assert all(re.fullmatch(r'"[A-Z]+ \S+ HTTP/1\.1" \d{3} (\d+|-) \d+ms', line) for line in lines)
    assert text.count("?[query]") == 5
    assert '"POST /api/v1/match?[query] HTTP/1.1"' in text
    assert '"GET /api/v1/[hash] HTTP/1.1"' in text
    assert '"GET /api/v1/match/[redacted] HTTP/1.1"' in text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/match",
        "/api/v1/hashes/changes",
        "/v1/SubmitFeedback",
        "/receipt/public-key.pem",
        "/admin/registry/webhookdelivery/3/change/",
        "/static/registry/hash-worker.0123456789ab.js",
    ],
)
def test_the_registrys_own_paths_are_logged_as_they_are(path: str) -> None:
    assert logged_path(path) == path


class _Stream:
    """A stream that keeps what is written to it; while ``broken``, every write fails."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.broken = False

    def write(self, text: str) -> None:
        if self.broken:
            raise BrokenPipeError
        self.writes.append(text)

    def flush(self) -> None:
        pass


def test_the_writer_writes_every_line_in_order_in_pieces_of_whole_lines() -> None:
    stream = _Stream()
    writer = _Writer(stream)  # type: ignore[arg-type]
    lines = [f'"GET /health HTTP/1.1" 200 16 {number}ms' for number in range(3000)]
    lines.append('"GET /' + "a" * 5000 + ' HTTP/1.1" 404 179 0ms')  # longer than a piece
    for line in lines:
        writer.lines.put(line)
    writer.stop()
    writes = stream.writes
    assert "".join(writes) == "".join(f"{line}\n" for line in lines)
    assert len(writes) > 1
    assert all(text.endswith("\n") for text in writes)
    assert all(len(text) <= 4096 or text.count("\n") == 1 for text in writes)


def test_a_write_that_fails_loses_its_lines_not_the_writer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = _Stream()
    stream.broken = True
    writer = _Writer(stream)  # type: ignore[arg-type]
    writer.lines.put('"GET /health HTTP/1.1" 200 16 0ms')
    wait_until(lambda: writer.failing, what="the failed write", timeout=5)
    stream.broken = False
    writer.lines.put('"GET /ready HTTP/1.1" 200 90 1ms')
    writer.stop()
    assert stream.writes == ['"GET /ready HTTP/1.1" 200 90 1ms\n']
    assert not writer.thread.is_alive()
    assert "access log lines lost" in caplog.text

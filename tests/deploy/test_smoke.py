"""deploy/smoke.sh passes: the production configuration registers, matches, withdraws, notifies.

The script starts the web server, a Celery worker and Celery beat itself, in a database of its own
named after the test database, and stops them; this test only runs it and reads what it says.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
STEPS = [
    "smoke: database {database} created and migrated",
    "smoke: partner created with a key and a webhook endpoint",
    "smoke: web server, Celery worker and Celery beat started",
    "smoke: registration: case RMP-",
    "smoke: match: the registered photo matches, an unrelated one does not",
    "smoke: withdrawal: the photo no longer matches, and the withdrawal journal holds it",
    "smoke: webhook: image.added and image.withdrawn delivered with valid signatures",
    "smoke: all steps passed",
    "smoke: stopped everything it started",
]


def _free_port_pair() -> int:
    """A port whose successor is free too (the script's receiver takes the next one)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            try:
                with socket.socket() as second:
                    second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two consecutive free ports")


@pytest.mark.slow
def test_the_smoke_script_runs_every_step_and_exits_zero() -> None:
    database = settings.DATABASES["default"]
    name = f"{database['NAME'].removeprefix('test_')}_smoke"
    server = f"postgres://{database['USER'] or 'postgres'}@{database['HOST']}:{database['PORT']}"
    result = subprocess.run(
        [str(ROOT / "deploy" / "smoke.sh")],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHON": sys.executable,
            "SMOKE_POSTGRES": server,
            "SMOKE_DATABASE": name,
            "SMOKE_REDIS": settings.REDIS_URL or "redis://127.0.0.1:6379/12",
            "SMOKE_PORT": str(_free_port_pair()),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(STEPS), result.stdout
    for line, step in zip(lines, STEPS, strict=True):
        assert line.startswith(step.format(database=name)), (line, step)

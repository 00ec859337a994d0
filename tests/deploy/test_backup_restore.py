"""A backup restored after a withdrawal does not undo it: deploy/backup.sh and deploy/restore.sh.

The test database is the production one: it is backed up with deploy/backup.sh, then a person
withdraws (the withdrawal journal records it) and another registers; the older dump is restored
into a fresh database with deploy/restore.sh, which replays the journal. The withdrawn photos
are withdrawn there and match nothing; everything else is as the backup left it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.test import override_settings

from registry.journal import journal_read
from registry.services.cases import case_withdraw
from tests.factories import register_case

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _url(database: str) -> str:
    settings = connection.settings_dict
    user = settings["USER"] or "postgres"
    return (
        f"postgres://{user}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{database}"
    )


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty database beside the test database, dropped at the end."""
    name = f"{connection.settings_dict['NAME']}_restored_{os.getpid()}"
    with psycopg.connect(_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield _url(name)
    with psycopg.connect(_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rows(url: str) -> dict[str, set[tuple[object, ...]]]:
    with psycopg.connect(url) as database:
        return {
            "cases": set(database.execute("SELECT reference, status FROM registry_case")),
            "images": set(database.execute("SELECT id, status FROM registry_registeredimage")),
            "hashes": set(database.execute("SELECT id, image_id, value FROM registry_imagehash")),
        }


def _match_counts(url: str, hashes: list[bytes]) -> list[int]:
    """How many images each hash matches in the database at ``url``, through hash_match."""
    program = (
        "import json, sys, django; django.setup()\n"
        "from registry.matching.follower import get_matcher\n"
        "from registry.selectors import hash_match\n"
        "get_matcher().load()\n"
        "queries = [bytes.fromhex(value) for value in json.loads(sys.argv[1])]\n"
        "print(json.dumps([len(found) for found in hash_match(queries)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, json.dumps([value.hex() for value in hashes])],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "registry.settings",
            "INDEX_AUTOSTART": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    counts: list[int] = json.loads(result.stdout.splitlines()[-1])
    return counts


def _run(script: str, *arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "deploy" / script), *arguments],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_restore_does_not_undo_a_withdrawal_made_after_the_backup(
    tmp_path: Path, fresh_database: str
) -> None:
    journal = tmp_path / "withdrawals.jsonl"
    source = _url(connection.settings_dict["NAME"])
    kept = register_case(images=2)
    withdrawn_later = register_case(images=3)
    withdrawn_before = register_case(images=1)
    with override_settings(WITHDRAWAL_JOURNAL=str(journal)):
        case_withdraw(case=withdrawn_before.case)

    backup = _run(
        "backup.sh",
        str(tmp_path / "backups"),
        env={"DATABASE_URL": source, "WITHDRAWAL_JOURNAL": str(journal)},
    )
    assert backup.returncode == 0, backup.stderr
    at_backup = _rows(source)
    (dump,) = (tmp_path / "backups").glob("rempart-*.dump")
    (position,) = (tmp_path / "backups").glob("rempart-*.journal")
    assert position.read_text() == f"journal {journal} lines 1\n"

    with override_settings(WITHDRAWAL_JOURNAL=str(journal)):
        case_withdraw(case=withdrawn_later.case)
    register_case(images=1)  # After the backup: lost by the restore, as expected.
    with psycopg.connect(source) as database:
        (latest_cursor,) = database.execute("SELECT max(id) FROM registry_change").fetchone() or (
            0,
        )
    entries = list(journal_read(journal))
    assert [entry.case_reference for entry in entries] == [
        withdrawn_before.case.reference,
        withdrawn_later.case.reference,
    ]
    assert entries[1].image_ids == tuple(
        sorted(withdrawn_later.case.images.values_list("pk", flat=True))
    )
    assert "hash" not in journal.read_text()
    assert withdrawn_later.secret not in journal.read_text()

    restore = _run(
        "restore.sh",
        str(dump),
        env={"DATABASE_URL": fresh_database, "WITHDRAWAL_JOURNAL": str(journal)},
    )
    assert restore.returncode == 0, restore.stderr
    assert (
        "withdrawals replayed: 1, already withdrawn: 1, cases not in the database: 0"
        in restore.stdout
    )

    restored = _rows(fresh_database)
    later_ids = set(withdrawn_later.case.images.values_list("pk", flat=True))
    expected_images = {
        (pk, "withdrawn" if pk in later_ids else status) for pk, status in at_backup["images"]
    }
    assert restored["images"] == expected_images
    expected_cases = {
        (reference, "withdrawn" if reference == withdrawn_later.case.reference else status)
        for reference, status in at_backup["cases"]
    }
    assert restored["cases"] == expected_cases
    assert restored["hashes"] == at_backup["hashes"]
    # A partner holding the latest cursor before the restore still receives the replayed
    # withdrawals: they come after it in the change sequence.
    with psycopg.connect(fresh_database) as database:
        replayed = [
            change_id
            for (change_id,) in database.execute(
                "SELECT id FROM registry_change WHERE kind = 'withdrawn' AND image_id = ANY(%s)",
                [sorted(later_ids)],
            )
        ]
    assert len(replayed) == len(later_ids)
    assert min(replayed) > latest_cursor

    queries = [
        withdrawn_later.images[0].hashes[0],
        withdrawn_later.images[2].hashes[0],
        kept.images[0].hashes[0],
        withdrawn_before.images[0].hashes[0],
    ]
    assert _match_counts(fresh_database, queries) == [0, 0, 1, 0]

    verify = subprocess.run(
        [sys.executable, "manage.py", "audit_verify"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": fresh_database},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

    again = _run(
        "restore.sh",
        str(dump),
        env={"DATABASE_URL": fresh_database, "WITHDRAWAL_JOURNAL": str(journal)},
    )
    assert again.returncode == 0, again.stderr
    assert _rows(fresh_database) == restored


def test_restore_refuses_to_run_without_a_journal(tmp_path: Path) -> None:
    dump = tmp_path / "rempart.dump"
    dump.write_bytes(b"")
    result = _run(
        "restore.sh",
        str(dump),
        env={"DATABASE_URL": "postgres://nowhere/none", "WITHDRAWAL_JOURNAL": ""},
    )
    assert result.returncode == 1
    assert "WITHDRAWAL_JOURNAL is not set" in result.stderr

"""The withdrawal journal: written before a withdrawal commits, read back for a replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from registry.journal import JournalError, WithdrawalJournalError, journal_read
from registry.models import Case, RegisteredImage
from registry.services.cases import case_withdraw
from tests.factories import register_case

pytestmark = pytest.mark.django_db


def test_a_withdrawal_appends_one_line_with_no_hash_or_secret(
    tmp_path: Path, settings: SettingsWrapper
) -> None:
    settings.WITHDRAWAL_JOURNAL = str(tmp_path / "withdrawals.jsonl")
    registered = register_case(images=2)
    assert case_withdraw(case=registered.case)
    assert not case_withdraw(case=registered.case)  # Already withdrawn: nothing more written.
    (line,) = (tmp_path / "withdrawals.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert set(record) == {"case", "images", "withdrawn_at"}
    assert record["case"] == registered.case.reference
    assert record["images"] == sorted(registered.case.images.values_list("pk", flat=True))
    for image in registered.images:
        for value in image.hashes:
            assert value.hex() not in line
    assert registered.secret not in line


def test_a_journal_that_cannot_be_written_fails_the_withdrawal(
    tmp_path: Path, settings: SettingsWrapper
) -> None:
    settings.WITHDRAWAL_JOURNAL = str(tmp_path / "missing-directory" / "withdrawals.jsonl")
    registered = register_case(images=1)
    with pytest.raises(WithdrawalJournalError):
        case_withdraw(case=registered.case)
    registered.case.refresh_from_db()
    assert registered.case.status == Case.Status.ACTIVE
    assert registered.case.images.get().status == RegisteredImage.Status.ACTIVE


def test_the_api_answers_503_when_the_journal_cannot_be_written(
    tmp_path: Path, settings: SettingsWrapper, client: Client
) -> None:
    settings.WITHDRAWAL_JOURNAL = str(tmp_path / "missing-directory" / "withdrawals.jsonl")
    registered = register_case(images=1)
    response = client.post(
        "/api/v1/cases/withdraw",
        {"case_reference": registered.case.reference, "case_secret": registered.secret},
        content_type="application/json",
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"]
    registered.case.refresh_from_db()
    assert registered.case.status == Case.Status.ACTIVE


def test_a_line_cut_short_at_the_end_is_skipped_and_one_in_the_middle_refused(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "withdrawals.jsonl"
    good = '{"case":"RMP-AAAAA-BBBBB","images":[1,2],"withdrawn_at":"2026-11-24T21:00:00+00:00"}'
    journal.write_text(f'{good}\n{{"case":"RMP-CC')
    assert [entry.image_ids for entry in journal_read(journal)] == [(1, 2)]
    journal.write_text(f'{{"case":"RMP-CC\n{good}\n')
    with pytest.raises(JournalError, match="line 1"):
        list(journal_read(journal))


def test_the_replay_withdraws_active_cases_once_and_skips_unknown_ones(tmp_path: Path) -> None:
    active = register_case(images=2)
    journal = tmp_path / "withdrawals.jsonl"
    lines = [
        {"case": active.case.reference, "images": [], "withdrawn_at": "2026-11-24T21:00:00+00:00"},
        {"case": "RMP-ZZZZZ-ZZZZZ", "images": [9], "withdrawn_at": "2026-11-24T21:01:00+00:00"},
    ]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    call_command("withdrawals_replay", str(journal), stdout=(out := _Capture()))
    assert out.text.strip() == (
        "withdrawals replayed: 1, already withdrawn: 0, cases not in the database: 1"
    )
    active.case.refresh_from_db()
    assert active.case.status == Case.Status.WITHDRAWN
    call_command("withdrawals_replay", str(journal), stdout=(again := _Capture()))
    assert "withdrawals replayed: 0, already withdrawn: 1" in again.text
    with pytest.raises(CommandError, match="No withdrawal journal"):
        call_command("withdrawals_replay", str(tmp_path / "absent.jsonl"))


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass

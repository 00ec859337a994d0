"""The public case endpoints refuse a client guessing a case secret, not the case's owner."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client

from registry import ratelimits
from registry.models import AuditEvent, Case
from tests.factories import RegisteredCase, dihedral_payload, random_dihedral

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.9"
OWNER = "198.51.100.4"
WRONG_SECRET = "AAAA-BBBB-CCCC-DDDD"


@pytest.fixture(autouse=True)
def _frozen_window(monkeypatch: pytest.MonkeyPatch) -> None:
    start = 1_800_000_000 - 1_800_000_000 % 3600
    monkeypatch.setattr(ratelimits, "time", SimpleNamespace(time=lambda: start + 600.0))


def _post(path: str, body: dict[str, Any], address: str) -> Any:
    return Client(REMOTE_ADDR=address).post(path, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("path", ["status", "withdraw", "images"])
def test_a_guessing_client_gets_429_with_retry_after(person: RegisteredCase, path: str) -> None:
    wrong = {
        "case_reference": person.case.reference,
        "case_secret": WRONG_SECRET,
        "images": [dihedral_payload(random_dihedral())],
    }
    for _ in range(10):
        assert _post(f"/api/v1/cases/{path}", wrong, ATTACKER).status_code == 403
    response = _post(f"/api/v1/cases/{path}", wrong, ATTACKER)
    assert response.status_code == 429
    assert response["Retry-After"] == "3000"
    assert response.json()["error"]["code"] == "case_check_limited"


def test_an_unknown_reference_and_a_wrong_secret_are_refused_alike(
    person: RegisteredCase,
) -> None:
    answers = []
    for reference in ("RMP-00000-00000", person.case.reference):
        body = {"case_reference": reference, "case_secret": WRONG_SECRET}
        first = _post("/api/v1/cases/status", body, ATTACKER)
        for _ in range(9):
            _post("/api/v1/cases/status", body, ATTACKER)
        limited = _post("/api/v1/cases/status", body, ATTACKER)
        answers.append(
            (first.status_code, first.json(), limited.status_code, limited.json(),
             limited["Retry-After"])
        )  # fmt: skip
    assert answers[0] == answers[1]
    assert answers[0][0] == 403
    assert answers[0][2] == 429


def test_the_owner_withdraws_while_an_attacker_hammers_the_reference(
    person: RegisteredCase,
) -> None:
    wrong = {"case_reference": person.case.reference, "case_secret": WRONG_SECRET}
    right = {"case_reference": person.case.reference, "case_secret": person.secret}
    statuses = [_post("/api/v1/cases/withdraw", wrong, ATTACKER).status_code for _ in range(25)]
    assert statuses[:10] == [403] * 10
    assert set(statuses[10:]) == {429}
    assert _post("/api/v1/cases/withdraw", right, ATTACKER).status_code == 429
    assert Case.objects.get(pk=person.case.pk).withdrawn_at is None
    assert not AuditEvent.objects.filter(action="case.withdrawn").exists()

    response = _post("/api/v1/cases/withdraw", right, OWNER)

    assert response.status_code == 200
    assert response.json()["status"] == "withdrawn"
    assert AuditEvent.objects.filter(action="case.withdrawn").count() == 1

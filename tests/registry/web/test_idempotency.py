"""Idempotency-Key on the people's JSON submissions: a retried registration opens one case.

The register and add-photos pages send a random key with each submission and the same key when
the person retries it. The registry keeps the answer, sealed, for 24 hours per client (known by
its daily digest, never its address), so a retry gets the same receipt, secret included, and
creates nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone

from registry.models import AuditEvent, Case, IdempotencyRecord, ImageHash, RegisteredImage
from tests.factories import RegisteredCase, dihedral_payload, random_dihedral

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = pytest.mark.django_db

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}


def registration(count: int = 2) -> dict[str, Any]:
    return {
        "scope": "intimate",
        "attestations": {
            "depicted_or_acting_for": True,
            "rights_to_register": True,
            "minor_depicted": False,
        },
        "images": [dihedral_payload(random_dihedral()) for _ in range(count)],
    }


def submit(
    client: Client,
    url: str,
    body: object,
    key: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    sent = {**ENGLISH, **(headers or {})}
    if key is not None:
        sent["Idempotency-Key"] = key
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=sent)


def snapshot() -> tuple[int, int, int, int]:
    return (
        Case.objects.count(),
        RegisteredImage.objects.count(),
        ImageHash.objects.count(),
        AuditEvent.objects.count(),
    )


def test_a_retried_registration_opens_one_case_and_answers_the_same_receipt(
    client: Client,
) -> None:
    body = registration()
    key = str(uuid.uuid4())

    first = submit(client, "/register/submit", body, key)
    after_first = snapshot()
    retry = submit(client, "/register/submit", body, key)

    assert first.status_code == retry.status_code == 201
    assert snapshot() == after_first
    assert Case.objects.count() == 1
    assert json.loads(retry.content) == json.loads(first.content)
    assert retry["Idempotent-Replayed"] == "true"
    assert "no-store" in retry["Cache-Control"]


def test_without_a_key_each_submission_opens_a_case(client: Client) -> None:
    body = registration()

    submit(client, "/register/submit", body, None)
    submit(client, "/register/submit", body, None)

    assert Case.objects.count() == 2


def test_the_same_key_with_another_body_is_refused_and_changes_nothing(client: Client) -> None:
    key = str(uuid.uuid4())
    submit(client, "/register/submit", registration(), key)
    before = snapshot()

    refused = submit(client, "/register/submit", registration(), key, headers=FRENCH)

    assert refused.status_code == 422
    error = json.loads(refused.content)["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "Rechargez la page" in error["message"]
    assert error["details"] == {}
    assert snapshot() == before


def test_a_refused_submission_keeps_nothing_so_the_corrected_one_goes_through(
    client: Client,
) -> None:
    key = str(uuid.uuid4())
    body = registration()
    body["attestations"]["rights_to_register"] = False

    refused = submit(client, "/register/submit", body, key)
    body["attestations"]["rights_to_register"] = True
    accepted = submit(client, "/register/submit", body, key)

    assert refused.status_code == 400
    assert accepted.status_code == 201
    assert Case.objects.count() == 1


def test_keys_are_kept_per_client(client: Client) -> None:
    body = registration()
    key = str(uuid.uuid4())

    mine = submit(client, "/register/submit", body, key)
    theirs = submit(Client(REMOTE_ADDR="192.0.2.77"), "/register/submit", body, key)

    assert mine.status_code == theirs.status_code == 201
    assert (
        json.loads(mine.content)["case_reference"] != json.loads(theirs.content)["case_reference"]
    )
    assert Case.objects.count() == 2


def test_a_key_is_forgotten_after_24_hours(client: Client) -> None:
    body = registration()
    key = str(uuid.uuid4())
    submit(client, "/register/submit", body, key)

    # Same day for the client digest: the record's age alone decides.
    with time_machine.travel(timezone.now() + dt.timedelta(hours=24, minutes=1)):
        IdempotencyRecord.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
        again = submit(client, "/register/submit", body, key)

    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert Case.objects.count() == 2


def test_the_kept_answer_holds_no_secret_key_or_address_in_clear(client: Client) -> None:
    key = str(uuid.uuid4())
    answer = json.loads(submit(client, "/register/submit", registration(), key).content)

    [record] = IdempotencyRecord.objects.all()
    stored = b" ".join(
        [
            record.scope.encode(),
            record.key_digest.encode(),
            record.request_digest.encode(),
            bytes(record.response_sealed),
        ]
    )
    assert record.scope.startswith("web:")
    for clear in [answer["case_secret"], answer["case_reference"], key, "127.0.0.1"]:
        assert clear.encode() not in stored
    assert b"receipt" not in stored


def test_a_retried_addition_adds_the_photos_once(client: Client, person: RegisteredCase) -> None:
    body = {
        "case_reference": person.case.reference,
        "case_secret": person.secret,
        "images": [dihedral_payload(random_dihedral()) for _ in range(2)],
    }
    key = str(uuid.uuid4())

    first = submit(client, "/status/photos", body, key)
    retry = submit(client, "/status/photos", body, key)

    assert first.status_code == retry.status_code == 201
    assert person.case.images.count() == 4
    assert json.loads(retry.content) == json.loads(first.content)


def test_a_key_used_to_register_cannot_replay_on_another_page(
    client: Client, person: RegisteredCase
) -> None:
    key = str(uuid.uuid4())
    submit(client, "/register/submit", registration(), key)
    before = snapshot()

    refused = submit(
        client,
        "/status/photos",
        {"case_reference": person.case.reference, "case_secret": person.secret, "images": []},
        key,
    )

    assert refused.status_code == 422
    assert json.loads(refused.content)["error"]["code"] == "idempotency_key_reused"
    assert snapshot() == before


@pytest.mark.parametrize("key", ["", "x" * 256, "clé-accentuée", "tab\there"])
def test_a_malformed_key_is_refused_with_a_400(client: Client, key: str) -> None:
    refused = submit(client, "/register/submit", registration(), key)

    assert refused.status_code == 400
    assert json.loads(refused.content)["error"]["code"] == "idempotency_key_invalid"
    assert Case.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_of_a_registration_open_exactly_one_case() -> None:
    body = registration()
    key = str(uuid.uuid4())
    answers: list[Response] = []
    start = threading.Barrier(4)

    def send() -> None:
        start.wait()
        try:
            answers.append(submit(Client(), "/register/submit", body, key))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [answer.status_code for answer in answers] == [201] * 4
    assert len({json.loads(answer.content)["case_secret"] for answer in answers}) == 1
    assert Case.objects.count() == 1

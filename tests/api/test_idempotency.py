"""Idempotency-Key: a retried creation creates nothing new and answers what the first did."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from registry.models import Case, IdempotencyRecord, ImageHash, RegisteredImage
from tests.conftest import PartnerPersona
from tests.factories import case_creation_body, dihedral_payload, random_dihedral, random_hash

pytestmark = pytest.mark.django_db


def _creation() -> dict[str, Any]:
    return case_creation_body([dihedral_payload(random_dihedral())], language="fr")


def _post(body: dict[str, Any], key: str | None, address: str = "127.0.0.1") -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return Client(REMOTE_ADDR=address).post(
        "/api/v1/cases", json.dumps(body), content_type="application/json", headers=headers
    )


def test_a_retry_with_the_same_key_replays_the_answer_and_creates_nothing() -> None:
    body = _creation()
    first = _post(body, "retry-1")
    second = _post(body, "retry-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Case.objects.count() == 1
    assert ImageHash.objects.count() == 8


def test_the_same_key_with_another_body_is_refused_and_creates_nothing() -> None:
    _post(_creation(), "retry-2")
    refused = _post(_creation(), "retry-2")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "idempotency_key_reused"
    assert Case.objects.count() == 1


def test_keys_are_scoped_per_client() -> None:
    body = _creation()
    first = _post(body, "shared", "203.0.113.1")
    other = _post(body, "shared", "203.0.113.2")
    assert first.json()["case_reference"] != other.json()["case_reference"]
    assert Case.objects.count() == 2


def test_without_a_key_every_request_creates() -> None:
    body = _creation()
    _post(body, None)
    _post(body, None)
    assert Case.objects.count() == 2
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_refused_and_creates_nothing(key: str) -> None:
    response = _post(_creation(), key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_invalid"
    assert not Case.objects.exists()


def test_a_refused_request_stores_nothing_and_may_be_retried() -> None:
    bad = {**_creation(), "scope": "nonsense"}
    assert _post(bad, "retry-3").status_code == 400
    assert not IdempotencyRecord.objects.exists()
    assert _post(_creation(), "retry-3").status_code == 201


def test_a_key_is_forgotten_after_24_hours() -> None:
    body = _creation()
    _post(body, "old")
    IdempotencyRecord.objects.update(created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert _post(body, "old").status_code == 201
    assert Case.objects.count() == 2


def test_the_stored_answer_does_not_hold_the_case_secret_in_clear() -> None:
    secret = _post(_creation(), "sealed").json()["case_secret"]
    record = IdempotencyRecord.objects.get()
    assert secret.encode() not in bytes(record.response_sealed)
    assert "sealed" not in record.key_digest


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_exactly_one_case() -> None:
    body = _creation()
    answers: list[Any] = []
    start = threading.Barrier(4)

    def send() -> None:
        start.wait()
        try:
            answers.append(_post(body, "race"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [201] * 4
    assert len({answer.json()["case_secret"] for answer in answers}) == 1
    assert Case.objects.count() == 1


def _submit(persona: PartnerPersona, body: dict[str, Any], key: str) -> Any:
    headers = {"Ocp-Apim-Subscription-Key": persona.raw_key, "x-functions-key": "f"}
    return Client().post(
        "/v1/SubmitHashes",
        json.dumps(body),
        content_type="application/json",
        headers={**headers, "Idempotency-Key": key},
    )


def test_partner_keys_are_scoped_per_partner_key(
    partner_a: PartnerPersona, partner_b: PartnerPersona
) -> None:
    body = {
        "count": 1,
        "hashRecords": [{"signalType": "ImagePDQ", "hashValue": random_hash().hex()}],
    }
    first = _submit(partner_a, body, "p-1")
    again = _submit(partner_a, body, "p-1")
    other = _submit(partner_b, body, "p-1")
    assert (first.status_code, again.status_code, other.status_code) == (200, 200, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert not other.has_header("Idempotent-Replayed")
    assert IdempotencyRecord.objects.count() == 2
    assert RegisteredImage.objects.count() == 2

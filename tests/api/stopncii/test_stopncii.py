"""The StopNCII wire format, driven by Meta's real client (``threatexchange``) over HTTP.

The live-server tests speak to the registry exactly as a platform already subscribed to
StopNCII.org would: ``StopNCIIAPI`` with ``base_url_override``, and the
``StopNCIISignalExchangeAPI`` delta layer that Hasher-Matcher-Actioner runs.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
import requests
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from threatexchange.exchanges.clients.stopncii.api import (
    StopNCIIAPI,
    StopNCIICaseStatus,
    StopNCIICSPFeedbackValue,
    StopNCIIEndpoint,
    StopNCIISignalType,
)
from threatexchange.exchanges.collab_config import CollaborationConfigBase
from threatexchange.exchanges.impl.stop_ncii_api import (
    StopNCIICheckpoint,
    StopNCIISignalExchangeAPI,
)
from threatexchange.signal_type.pdq.signal import PdqSignal

from registry.match_ids import match_id_encode
from registry.models import (
    AuditEvent,
    Case,
    Change,
    ConsentRecord,
    Disclosure,
    Feedback,
    ImageHash,
    PartnerKey,
    RegisteredImage,
)
from registry.services.cases import case_withdraw
from registry.services.partners import partner_key_issue
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase, random_hash, register_case

PDQ = PdqSignal.get_name()


def _client(base_url: str, key: str) -> StopNCIIAPI:
    return StopNCIIAPI(
        subscription_key=key,
        fetch_function_key=key,
        additional_function_keys={
            StopNCIIEndpoint.SubmitFeedback: key,
            StopNCIIEndpoint.SubmitHashes: key,
        },
        base_url_override=f"{base_url}/v1",
    )


def _exchange(client: StopNCIIAPI) -> StopNCIISignalExchangeAPI:
    collab = CollaborationConfigBase(name="Rempart", api="stop_ncii", enabled=True)
    return StopNCIISignalExchangeAPI(collab, client)


def _backdate(case: Case, moment: dt.datetime) -> None:
    Change.objects.filter(image__case=case).update(created_at=moment)


def _hashes(registered: RegisteredCase) -> set[str]:
    return {value.hex() for image in registered.images for value in image.hashes}


@pytest.mark.django_db(transaction=True)
def test_the_real_client_fetches_withdraws_and_reports(
    live_server: Any, partner_a: PartnerPersona
) -> None:
    now = timezone.now()
    old = register_case(images=1)
    _backdate(old.case, now - dt.timedelta(hours=2))
    person = register_case(images=2)
    _backdate(person.case, now - dt.timedelta(hours=1))
    ordinary = register_case(images=1, scope=ConsentRecord.Scope.NO_SEXUAL_EDIT)
    client = _client(live_server.url, partner_a.raw_key)
    exchange = _exchange(client)
    checkpoints: list[int] = []

    # 1. A full fetch through the delta layer: intimate images only, 8 records per image.
    state: dict[tuple[str, str], Any] = {}
    for delta in exchange.fetch_iter([PdqSignal], None):
        exchange.naive_fetch_merge(state, delta.updates)
        checkpoints.append(delta.checkpoint.update_time)
    assert set(state) == {(PDQ, value) for value in _hashes(old) | _hashes(person)}
    assert not _hashes(ordinary) & {value for _, value in state}
    assert Disclosure.objects.filter(partner_id=partner_a.partner.pk).count() == 3
    full_checkpoint = StopNCIICheckpoint(checkpoints[-1], int(now.timestamp()))

    # 2. An incremental fetch after a new case: the new case, and no change from before the
    # checkpoint's second (the old case is not sent again).
    newcomer = register_case(images=1)
    incremental: dict[tuple[str, str], Any] = {}
    for delta in exchange.fetch_iter([PdqSignal], full_checkpoint):
        incremental.update(delta.updates)
        checkpoints.append(delta.checkpoint.update_time)
    fetched = {value for _, value in incremental}
    assert _hashes(newcomer) <= fetched
    assert not _hashes(old) & fetched
    after_new = checkpoints[-1]

    # 3. A withdrawal arrives as Withdrawn, on every hash of every image of the case.
    case_withdraw(case=person.case)
    records = {}
    for page in client.fetch_hashes_iter(start_timestamp=after_new):
        records.update({record.hashValue: record for record in page.hashRecords})
        checkpoints.append(page.nextSetTimestamp)
    assert _hashes(person) <= set(records)
    person_ids = {
        match_id_encode(image_id=image_id, partner_id=partner_a.partner.pk)
        for image_id in RegisteredImage.objects.filter(case=person.case).values_list(
            "pk", flat=True
        )
    }
    for value in _hashes(person):
        assert records[value].hashStatus is StopNCIICaseStatus.Withdrawn
        assert set(records[value].caseNumbers.values()) == {StopNCIICaseStatus.Withdrawn}
        assert set(records[value].caseNumbers) <= person_ids
    # threatexchange 1.2.17's delta layer compares the wrong field and keeps withdrawn hashes:
    # it re-delivers them with metadata, which is why withdrawals also stop matching here.
    layered: dict[tuple[str, str], Any] = {}
    for delta in exchange.fetch_iter([PdqSignal], StopNCIICheckpoint(after_new, 0)):
        layered.update(delta.updates)
        checkpoints.append(delta.checkpoint.update_time)
    assert {(PDQ, value) for value in _hashes(person)} <= set(layered)

    # 4. Feedback lands on the images disclosed with that hash; unknown hashes are ignored.
    value = sorted(_hashes(newcomer))[3]
    client.submit_feedback(
        StopNCIISignalType.ImagePDQ, value, StopNCIICSPFeedbackValue.Blocked, {"ncii"}
    )
    client.submit_feedback(
        StopNCIISignalType.ImagePDQ, random_hash().hex(), StopNCIICSPFeedbackValue.Blocked
    )
    client.submit_feedback(StopNCIISignalType.ImagePDQ, value, StopNCIICSPFeedbackValue.None_)
    (feedback,) = Feedback.objects.all()
    assert feedback.partner_id == partner_a.partner.pk
    assert feedback.image.case_id == newcomer.case.pk
    assert feedback.verdict == "blocked"
    assert feedback.tags == ["ncii"]

    # 5. Submitted hashes land as images awaiting review, in no feed.
    submitted = random_hash().hex()
    client.submit_hash(StopNCIISignalType.ImagePDQ, submitted, {"found"})
    image = RegisteredImage.objects.get(submitted_by_partner=partner_a.partner.pk)
    assert image.case_id is None
    assert image.status == "received"
    assert image.scope == "intimate"
    assert [bytes(h.value).hex() for h in ImageHash.objects.filter(image=image)] == [submitted]
    assert AuditEvent.objects.filter(action="partner.hashes_submitted").count() == 1
    final = {
        record.hashValue
        for page in client.fetch_hashes_iter()
        for record in page.hashRecords
        if record.hashStatus is StopNCIICaseStatus.Active
    }
    checkpoints.append(client.fetch_hashes().nextSetTimestamp)
    assert submitted not in final
    assert final == _hashes(old) | _hashes(newcomer)

    # Through every step, the checkpoint never went backwards.
    assert checkpoints == sorted(checkpoints)


@pytest.mark.django_db(transaction=True)
def test_pages_are_placed_by_their_token_alone(live_server: Any, partner_a: PartnerPersona) -> None:
    cases = [register_case(images=1) for _ in range(5)]
    client = _client(live_server.url, partner_a.raw_key)

    pages = []
    token = ""
    while True:
        # The client repeats startTimestamp on every page; a token must override it.
        page = client.fetch_hashes(page_size=16, start_timestamp=10, next_page=token)
        pages.append(page)
        if not page.hasMoreRecords:
            break
        assert page.nextPageToken
        token = page.nextPageToken

    assert [page.count for page in pages] == [16, 16, 8]
    seen = [record.hashValue for page in pages for record in page.hashRecords]
    assert len(seen) == len(set(seen)) == 40
    assert set(seen) == set().union(*(_hashes(case) for case in cases))
    stamps = [page.nextSetTimestamp for page in pages]
    assert stamps == sorted(stamps)


# --- The same routes, without the client: authentication, validation, aggregation -----------


def _headers(key: str, function_key: str | None = None) -> dict[str, str]:
    headers = {"Ocp-Apim-Subscription-Key": key}
    if function_key is not None:
        headers["x-functions-key"] = function_key
    return headers


def _post(path: str, body: Any, headers: dict[str, str]) -> Any:
    return Client().post(path, json.dumps(body), content_type="application/json", headers=headers)


FEEDBACK = {"count": 1, "hashFeedbacks": [{"hashValue": "0" * 64, "feedbackValue": "Blocked"}]}
SUBMIT = {
    "count": 1,
    "hashRecords": [
        {"lastModtimestamp": 1, "signalType": "StopNCIISignalType.ImagePDQ", "hashValue": "x"}
    ],
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("no keys", 401, "key_required"),
        ("no function key", 401, "key_required"),
        ("bearer only", 401, "key_required"),
        ("unknown key", 401, "key_invalid"),
        ("revoked key", 401, "key_invalid"),
        ("key without the scope", 403, "scope_missing"),
    ],
)
@pytest.mark.parametrize("endpoint", ["FetchHashes", "SubmitFeedback", "SubmitHashes"])
def test_stopncii_authorization_matrix(
    partner_a: PartnerPersona,
    revoked_partner: PartnerPersona,
    person: RegisteredCase,
    caller: str,
    status: int,
    code: str,
    endpoint: str,
) -> None:
    raw = partner_a.raw_key
    headers = {
        "no keys": {},
        "no function key": _headers(raw),
        "bearer only": partner_a.auth,
        "unknown key": _headers("rmp_0000000000_" + "0" * 40, "x"),
        "revoked key": _headers(revoked_partner.raw_key, revoked_partner.raw_key),
    }.get(caller)
    if caller == "key without the scope":
        PartnerKey.objects.filter(pk=partner_a.key.pk).update(revoked_at=timezone.now())
        issued = partner_key_issue(partner=partner_a.partner, scopes=["match"])
        headers = _headers(issued.raw, "function-key")
    assert headers is not None
    before = (Disclosure.objects.count(), Feedback.objects.count(), RegisteredImage.objects.count())

    if endpoint == "FetchHashes":
        response = Client().get("/v1/FetchHashes", headers=headers)
    else:
        response = _post(f"/v1/{endpoint}", FEEDBACK if "Feedback" in endpoint else SUBMIT, headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    after = (Disclosure.objects.count(), Feedback.objects.count(), RegisteredImage.objects.count())
    assert after == before


@pytest.mark.django_db
def test_fetch_answers_with_the_fields_the_client_needs(
    partner_a: PartnerPersona, person: RegisteredCase
) -> None:
    response = Client().get(
        "/v1/FetchHashes", {"startTimestamp": 10}, headers=_headers(partner_a.raw_key, "f")
    )

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["count"] == 16
    assert body["hasMoreRecords"] is False
    assert body["nextPageToken"] is None
    assert body["nextSetTimestamp"] == int(Change.objects.latest("id").created_at.timestamp())
    record = body["hashRecords"][0]
    assert record["signalType"] == "ImagePDQ"
    assert record["hashStatus"] == "Active"
    assert isinstance(record["lastModtimestamp"], int)
    assert list(record["caseNumbers"].values()) == ["Active"]
    assert record["minorDepicted"] is False


@pytest.mark.django_db
def test_a_withdrawal_never_discloses_hashes_to_a_partner_that_never_had_them(
    partner_a: PartnerPersona, partner_b: PartnerPersona, person: RegisteredCase
) -> None:
    Client().get("/v1/FetchHashes", headers=_headers(partner_a.raw_key, "f"))
    case_withdraw(case=person.case)

    a_body = Client().get("/v1/FetchHashes", headers=_headers(partner_a.raw_key, "f")).json()
    b_body = Client().get("/v1/FetchHashes", headers=_headers(partner_b.raw_key, "f")).json()

    assert {record["hashStatus"] for record in a_body["hashRecords"]} == {"Withdrawn"}
    assert a_body["count"] == 16
    assert b_body["hashRecords"] == []
    assert Disclosure.objects.filter(partner_id=partner_b.partner.pk).count() == 0


@pytest.mark.django_db
def test_a_hash_held_by_an_active_image_stays_active_when_another_holder_is_withdrawn(
    partner_a: PartnerPersona,
) -> None:
    first = register_case(images=1)
    Client().get("/v1/FetchHashes", headers=_headers(partner_a.raw_key, "f"))
    # The same photo registered again in another case, then the first case withdrawn.
    second = register_case(images=1)
    ImageHash.objects.filter(image__case=second.case, variant="original").update(
        value=first.images[0].hashes[0]
    )
    case_withdraw(case=first.case)

    body = Client().get("/v1/FetchHashes", headers=_headers(partner_a.raw_key, "f")).json()

    shared = [r for r in body["hashRecords"] if r["hashValue"] == first.images[0].hashes[0].hex()]
    assert len(shared) == 1
    assert shared[0]["hashStatus"] == "Active"
    assert sorted(shared[0]["caseNumbers"].values()) == ["Active", "Withdrawn"]


@pytest.mark.django_db
def test_no_sexual_edit_photos_are_sent_only_to_partners_that_opted_in(
    partner_a: PartnerPersona,
) -> None:
    register_case(images=1, scope=ConsentRecord.Scope.NO_SEXUAL_EDIT)
    headers = _headers(partner_a.raw_key, "f")

    before = Client().get("/v1/FetchHashes", headers=headers).json()
    partner_a.partner.sync_scopes = ["intimate", "no_sexual_edit"]
    partner_a.partner.save()
    after = Client().get("/v1/FetchHashes", headers=headers).json()

    assert before["count"] == 0
    assert after["count"] == 8


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("record", "status", "code"),
    [
        ({"signalType": "VideoMD5", "hashValue": "ab" * 16}, 422, "signal_type_unsupported"),
        ({"signalType": "ImagePDQ", "hashValue": "zz"}, 422, "hash_malformed"),
        ({"signalType": "ImagePDQ", "hashValue": "0" * 64}, 422, "hash_all_zero"),
        ({"signalType": "ImagePDQ"}, 400, "invalid_request"),
    ],
)
def test_submitted_hashes_are_validated_all_or_nothing(
    partner_a: PartnerPersona, record: dict[str, str], status: int, code: str
) -> None:
    good = {"signalType": "ImagePDQ", "hashValue": random_hash().hex()}
    body = {"count": 2, "hashRecords": [good, record]}

    response = _post("/v1/SubmitHashes", body, _headers(partner_a.raw_key, "f"))

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert RegisteredImage.objects.count() == 0


@pytest.mark.django_db
def test_an_invalid_page_token_is_refused_in_json(partner_a: PartnerPersona) -> None:
    response = Client().get(
        "/v1/FetchHashes", {"nextPageToken": "garbage"}, headers=_headers(partner_a.raw_key, "f")
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "cursor_invalid"


def test_the_client_raises_on_a_refusal_with_a_json_body(live_server: Any) -> None:
    client = _client(live_server.url, "rmp_0000000000_" + "0" * 40)

    with pytest.raises(requests.HTTPError) as raised:
        client.fetch_hashes()

    response = raised.value.response
    assert response is not None
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "key_invalid"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"startTimestamp": "253402300799"}, 200),
        ({"startTimestamp": "253402300800"}, 400),
        ({"startTimestamp": "-1"}, 400),
        ({"pageSize": "0"}, 400),
        ({"pageSize": "1001"}, 400),
    ],
)
def test_fetch_parameters_are_bounded(
    partner_a: PartnerPersona, person: RegisteredCase, params: dict[str, str], status: int
) -> None:
    response = Client().get("/v1/FetchHashes", params, headers=_headers(partner_a.raw_key, "f"))

    assert response.status_code == status
    if status == 200:
        assert response.json()["count"] == 0
        assert response.json()["nextSetTimestamp"] == 253402300799
    else:
        assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_never_skips_a_change_that_commits_late(partner_a: PartnerPersona) -> None:
    """A change appended (under the sequence lock) before a fetch but committed after it is in
    the next fetch from that fetch's checkpoint."""
    first = register_case(images=1)
    # Seconds apart, so that a checkpoint taken from the clock would land after the late one.
    _backdate(first.case, timezone.now() - dt.timedelta(seconds=20))
    headers = _headers(partner_a.raw_key, "f")
    appended = threading.Event()
    may_commit = threading.Event()
    late: list[RegisteredCase] = []

    def writer() -> None:
        with transaction.atomic():
            late.append(register_case(images=1))
            _backdate(late[0].case, timezone.now() - dt.timedelta(seconds=10))
            appended.set()
            may_commit.wait(timeout=10)
        connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    appended.wait(timeout=10)
    during = Client().get("/v1/FetchHashes", headers=headers).json()
    may_commit.set()
    thread.join(timeout=10)
    after = (
        Client()
        .get("/v1/FetchHashes", {"startTimestamp": during["nextSetTimestamp"]}, headers=headers)
        .json()
    )

    assert during["count"] == 8
    assert _hashes(late[0]) <= {record["hashValue"] for record in after["hashRecords"]}
    assert after["nextSetTimestamp"] >= during["nextSetTimestamp"]


def test_a_checkpoint_older_than_the_tombstones_kept_gets_410(
    partner_a: PartnerPersona, person: RegisteredCase, settings: Any
) -> None:
    settings.TOMBSTONE_RETENTION_DAYS = 45
    long_ago = timezone.now() - dt.timedelta(days=45, minutes=1)
    Change.objects.update(created_at=long_ago)
    headers = _headers(partner_a.raw_key, "f")
    checkpoint = int(long_ago.timestamp()) + 1  # After every change: an incremental fetch.

    expired = Client().get("/v1/FetchHashes", {"startTimestamp": checkpoint}, headers=headers)
    from_start = Client().get("/v1/FetchHashes", {"startTimestamp": 10}, headers=headers)

    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "cursor_expired"
    assert from_start.status_code == 200
    assert from_start.json()["count"] == 16

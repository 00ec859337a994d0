"""The native sync feed, GET /api/v1/hashes/changes: order, scopes, tombstones, cursors."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from api.cursors import CursorInvalid, cursor_encode, cursor_parse
from registry.match_ids import match_id_decode, match_id_encode
from registry.models import Change, ConsentRecord, Disclosure, PartnerKey, RegisteredImage
from registry.pdq import DIHEDRAL_VARIANTS
from registry.services.cases import case_withdraw
from registry.services.partners import partner_key_issue
from registry.services.review import image_submit_by_partner
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase, random_hash, register_case

pytestmark = pytest.mark.django_db

URL = "/api/v1/hashes/changes"


def _get(headers: dict[str, str], **params: Any) -> Any:
    return Client().get(URL, params, headers=headers)


def _all(headers: dict[str, str], cursor: str = "", limit: int = 500) -> tuple[list[Any], str]:
    entries: list[Any] = []
    while True:
        body = _get(headers, cursor=cursor, limit=limit).json()
        entries += body["entries"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return entries, cursor


def test_the_feed_lists_additions_in_sequence_order_with_their_eight_hashes(
    partner_a: PartnerPersona, person: RegisteredCase
) -> None:
    response = _get(partner_a.auth)

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    images = list(RegisteredImage.objects.filter(case=person.case).order_by("pk"))
    assert [entry["id"] for entry in body["entries"]] == [
        match_id_encode(image_id=image.pk, partner_id=partner_a.partner.pk) for image in images
    ]
    first = body["entries"][0]
    assert first["kind"] == "added"
    assert first["status"] == "active"
    assert first["scope"] == "intimate"
    assert first["minor_depicted"] is False
    assert [item["variant"] for item in first["hashes"]] == list(DIHEDRAL_VARIANTS)
    assert [item["hash"] for item in first["hashes"]] == [
        value.hex() for value in person.images[0].hashes
    ]
    assert body["has_more"] is False
    assert cursor_parse(body["next_cursor"]) == Change.objects.latest("id").pk


def test_a_withdrawal_arrives_as_a_tombstone_without_hashes(
    partner_a: PartnerPersona, person: RegisteredCase
) -> None:
    first = _get(partner_a.auth).json()
    case_withdraw(case=person.case)

    later = _get(partner_a.auth, cursor=first["next_cursor"]).json()

    assert [entry["kind"] for entry in later["entries"]] == ["withdrawn", "withdrawn"]
    assert [entry["id"] for entry in later["entries"]] == [e["id"] for e in first["entries"]]
    assert all("hashes" not in entry for entry in later["entries"])
    # From the start, the additions of a withdrawn case are tombstones too: never its hashes.
    replay, _ = _all(partner_a.auth)
    assert [entry["kind"] for entry in replay] == ["withdrawn"] * 4
    assert all("hashes" not in entry for entry in replay)


def test_pages_follow_the_cursor_without_gaps_or_repeats(partner_a: PartnerPersona) -> None:
    for _ in range(3):
        register_case(images=2)

    entries, _ = _all(partner_a.auth, limit=4)

    assert len(entries) == 6
    assert len({entry["id"] for entry in entries}) == 6
    expected = [
        match_id_encode(image_id=image_id, partner_id=partner_a.partner.pk)
        for image_id in Change.objects.order_by("id").values_list("image_id", flat=True)
    ]
    assert [entry["id"] for entry in entries] == expected


def test_the_feed_keeps_to_the_partners_sync_scopes(partner_a: PartnerPersona) -> None:
    register_case(images=1, scope=ConsentRecord.Scope.NO_SEXUAL_EDIT)
    intimate = register_case(images=1)

    default, cursor = _all(partner_a.auth)
    partner_a.partner.sync_scopes = ["intimate", "no_sexual_edit"]
    partner_a.partner.save()
    both, _ = _all(partner_a.auth)

    image = RegisteredImage.objects.get(case=intimate.case)
    assert [entry["id"] for entry in default] == [
        match_id_encode(image_id=image.pk, partner_id=partner_a.partner.pk)
    ]
    # The cursor moved past the change it left out, so the next page does not read it again.
    assert cursor_parse(cursor) == Change.objects.latest("id").pk
    assert [entry["scope"] for entry in both] == ["no_sexual_edit", "intimate"]


def test_partner_submissions_awaiting_review_are_never_in_the_feed(
    partner_a: PartnerPersona, partner_b: PartnerPersona
) -> None:
    image_submit_by_partner(partner_id=partner_b.partner.pk, hashes=[random_hash()])
    # Even if one had a change (a later review step appends one), received stays out.
    Change.objects.create(
        kind="added", image=RegisteredImage.objects.get(), created_at=timezone.now()
    )

    entries, _ = _all(partner_a.auth)

    assert entries == []
    assert Disclosure.objects.count() == 0


def test_partner_b_sees_only_its_own_ids_and_its_own_disclosures(
    partner_a: PartnerPersona, partner_b: PartnerPersona, person: RegisteredCase
) -> None:
    a_entries, _ = _all(partner_a.auth)
    assert Disclosure.objects.filter(partner_id=partner_b.partner.pk).count() == 0
    b_entries, _ = _all(partner_b.auth)

    a_ids = {entry["id"] for entry in a_entries}
    b_ids = {entry["id"] for entry in b_entries}
    assert a_ids.isdisjoint(b_ids)
    assert all(match_id_decode(i, partner_id=partner_a.partner.pk) is None for i in b_ids)
    assert {match_id_decode(i, partner_id=partner_b.partner.pk) for i in b_ids} == set(
        RegisteredImage.objects.filter(case=person.case).values_list("pk", flat=True)
    )


def test_every_image_served_is_in_the_disclosure_ledger(
    partner_a: PartnerPersona, person: RegisteredCase
) -> None:
    _get(partner_a.auth)
    first = {
        row.image_id: row for row in Disclosure.objects.filter(partner_id=partner_a.partner.pk)
    }
    _get(partner_a.auth)
    again = {
        row.image_id: row for row in Disclosure.objects.filter(partner_id=partner_a.partner.pk)
    }

    assert set(first) == set(
        RegisteredImage.objects.filter(case=person.case).values_list("pk", flat=True)
    )
    for image_id, row in again.items():
        assert row.first_disclosed_at == first[image_id].first_disclosed_at
        assert row.last_disclosed_at > first[image_id].last_disclosed_at
    # Tombstones carry no hashes: nothing more is disclosed.
    case_withdraw(case=person.case)
    _get(partner_a.auth, cursor=cursor_encode(Change.objects.order_by("id")[1].pk))
    assert Disclosure.objects.count() == 2


def test_a_cursor_older_than_the_retention_horizon_gets_410(
    partner_a: PartnerPersona, person: RegisteredCase, settings: Any
) -> None:
    settings.TOMBSTONE_RETENTION_DAYS = 45
    cursor = _get(partner_a.auth).json()["next_cursor"]
    Change.objects.update(created_at=timezone.now() - dt.timedelta(days=45, minutes=1))

    expired = _get(partner_a.auth, cursor=cursor)
    fresh = _get(partner_a.auth)

    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "cursor_expired"
    assert fresh.status_code == 200
    Change.objects.update(created_at=timezone.now() - dt.timedelta(days=44))
    assert _get(partner_a.auth, cursor=cursor).status_code == 200


def test_a_cursor_whose_changes_were_deleted_gets_410(partner_a: PartnerPersona) -> None:
    # Retention deleted every change up to this position (the rows are gone, not just old).
    response = _get(partner_a.auth, cursor=cursor_encode(12345))

    assert response.status_code == 410


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "not-a-cursor"}, "cursor_invalid"),
        ({"cursor": cursor_encode(1) + "x"}, "cursor_invalid"),
        ({"limit": "0"}, "invalid_request"),
        ({"limit": "1001"}, "invalid_request"),
        ({"limit": "ten"}, "invalid_request"),
    ],
)
def test_malformed_parameters_get_400(
    partner_a: PartnerPersona, params: dict[str, str], code: str
) -> None:
    response = _get(partner_a.auth, **params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("no key", 401, "key_required"),
        ("unknown key", 401, "key_invalid"),
        ("revoked key", 401, "key_invalid"),
        ("key without sync scope", 403, "scope_missing"),
        ("key in query string", 400, "key_in_url"),
        ("sync key", 200, None),
    ],
)
def test_feed_authorization_matrix(
    partner_a: PartnerPersona,
    revoked_partner: PartnerPersona,
    person: RegisteredCase,
    caller: str,
    status: int,
    code: str | None,
) -> None:
    params: dict[str, str] = {}
    if caller == "no key":
        headers: dict[str, str] = {}
    elif caller == "unknown key":
        headers = {"Authorization": "Bearer rmp_0000000000_" + "0" * 40}
    elif caller == "revoked key":
        headers = revoked_partner.auth
    elif caller == "key without sync scope":
        PartnerKey.objects.filter(pk=partner_a.key.pk).update(revoked_at=timezone.now())
        issued = partner_key_issue(partner=partner_a.partner, scopes=["match", "feedback"])
        headers = {"Authorization": f"Bearer {issued.raw}"}
    elif caller == "key in query string":
        headers, params = partner_a.auth, {"key": partner_a.raw_key}
    else:
        headers = partner_a.auth

    response = _get(headers, **params)

    assert response.status_code == status
    if code is None:
        assert len(response.json()["entries"]) == 2
        assert Disclosure.objects.count() == 2
    else:
        assert response.json()["error"]["code"] == code
        assert Disclosure.objects.count() == 0


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_a_cursor_parses_to_what_was_encoded(change_id: int) -> None:
    assert cursor_parse(cursor_encode(change_id)) == change_id


@given(st.one_of(st.text(max_size=30), st.from_regex(r"c1\.[A-Za-z0-9_=-]{9,13}", fullmatch=True)))
def test_any_string_parses_to_its_encoding_or_is_refused(text: str) -> None:
    refused: CursorInvalid | None = None
    try:
        change_id = cursor_parse(text)
    except CursorInvalid as error:
        refused = error
    if refused is None:
        assert cursor_encode(change_id) == text
    else:
        assert refused.status_code == 400
        assert refused.code == "cursor_invalid"


@pytest.mark.django_db(transaction=True)
def test_a_cursor_never_skips_a_change_that_commits_late(partner_a: PartnerPersona) -> None:
    """A writes change N and commits late; B appends after it. The reader never jumps past N.

    A holds the sequence lock from its append to its commit, so B's append (N+1) waits for A,
    and a reader sees either nothing new, or N, or N and N+1: never N+1 alone.
    """
    register_case(images=1)
    cursor = _get(partner_a.auth).json()["next_cursor"]
    a_appended = threading.Event()
    a_may_commit = threading.Event()
    b_done = threading.Event()

    def writer_a() -> None:
        with transaction.atomic():
            register_case(images=1)  # appends under the lock; commits when this block ends
            a_appended.set()
            a_may_commit.wait(timeout=10)
        connection.close()

    def writer_b() -> None:
        a_appended.wait(timeout=10)
        register_case(images=1)  # waits for A's lock
        b_done.set()
        connection.close()

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    for thread in threads:
        thread.start()
    a_appended.wait(timeout=10)
    assert not b_done.wait(timeout=0.5)  # B is blocked behind A's lock
    during = _get(partner_a.auth, cursor=cursor).json()
    assert during["entries"] == []
    assert during["next_cursor"] == cursor  # nothing read: the cursor does not move
    a_may_commit.set()
    for thread in threads:
        thread.join(timeout=10)

    after, _ = _all(partner_a.auth, cursor=cursor)
    assert len(after) == 2
    ids = list(Change.objects.order_by("id").values_list("image_id", flat=True))
    assert [e["id"] for e in after] == [
        match_id_encode(image_id=image_id, partner_id=partner_a.partner.pk) for image_id in ids[1:]
    ]


def test_a_minor_depicted_case_is_flagged(partner_a: PartnerPersona) -> None:
    register_case(images=1, minor_depicted=True)

    (entry,) = _get(partner_a.auth).json()["entries"]

    assert entry["minor_depicted"] is True

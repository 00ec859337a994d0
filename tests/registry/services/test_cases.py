"""The registry's write services on PostgreSQL: whole transactions, idempotence, evidence."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import identify_hasher
from django.db import DatabaseError, connection, transaction

from registry import services
from registry.exceptions import CaseAccessDenied, CaseWithdrawn, InvalidInput, TooManyImages
from registry.models import AuditEvent, Case, Change, ConsentRecord, ImageHash, RegisteredImage
from registry.selectors.cases import case_summary
from registry.services import cases as case_services
from registry.services.cases import Attestations, case_add_images, case_check_secret, case_create
from tests.factories import ATTESTED, RegisteredCase, random_dihedral, register_case

pytestmark = pytest.mark.django_db


def _row_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Case, ConsentRecord, RegisteredImage, ImageHash, Change, AuditEvent)
    }


def test_case_create_writes_case_consent_images_hashes_changes_and_audit() -> None:
    images = [random_dihedral(), random_dihedral()]
    created = case_create(
        scope="no_sexual_edit",
        attestations=Attestations(
            depicted_or_acting_for=True, rights_to_register=True, minor_depicted=True
        ),
        terms_version="2026-11",
        language="fr",
        images=images,
    )
    case = Case.objects.get(pk=created.case.pk)
    assert case.status == "active"
    assert case.withdrawn_at is None
    consent = case.consent
    assert (consent.scope, consent.minor_depicted, consent.language, consent.terms_version) == (
        "no_sexual_edit", True, "fr", "2026-11",
    )  # fmt: skip
    stored = list(case.images.order_by("pk"))
    assert [image.quality for image in stored] == [90, 90]
    for image, sent in zip(stored, images, strict=True):
        hashes = {row.variant: bytes(row.value) for row in image.hashes.all()}
        assert hashes == dict(sent.by_variant())
    assert list(Change.objects.order_by("pk").values_list("kind", "image_id")) == [
        ("added", stored[0].pk), ("added", stored[1].pk),
    ]  # fmt: skip
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.subject) == (
        "case.created", "person", f"case:{case.reference}",
    )  # fmt: skip
    assert event.details == {"scope": "no_sexual_edit", "images": 2, "minor_depicted": True}


def test_case_secret_is_stored_only_as_an_argon2_digest() -> None:
    registered = register_case()
    digest = Case.objects.get(pk=registered.case.pk).secret_digest
    assert registered.secret not in digest
    assert identify_hasher(digest).algorithm == "argon2"


def test_case_references_are_not_sequential() -> None:
    first, second = register_case(images=1), register_case(images=1)
    assert first.case.reference != second.case.reference
    assert first.case.reference.startswith("RMP-")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"scope": "anything"}, "scope_invalid"),
        ({"language": "de"}, "language_invalid"),
        ({"terms_version": ""}, "terms_version_invalid"),
        ({"terms_version": "x" * 33}, "terms_version_invalid"),
        ({"images": []}, "images_required"),
        (
            {"attestations": Attestations(
                depicted_or_acting_for=False, rights_to_register=True, minor_depicted=False
            )},
            "attestation_required",
        ),
        (
            {"attestations": Attestations(
                depicted_or_acting_for=True, rights_to_register=False, minor_depicted=False
            )},
            "attestation_required",
        ),
    ],
)  # fmt: skip
def test_case_create_refuses_invalid_input_and_writes_nothing(
    changes: dict[str, object], code: str
) -> None:
    arguments: dict[str, object] = {
        "scope": "intimate",
        "attestations": ATTESTED,
        "terms_version": "2026-11",
        "language": "en",
        "images": [random_dihedral()],
    }
    arguments.update(changes)
    before = _row_counts()
    with pytest.raises(InvalidInput) as raised:
        case_create(**arguments)  # type: ignore[arg-type]
    assert raised.value.code == code
    assert _row_counts() == before


def test_case_create_refuses_more_images_than_a_request_may_carry(settings: object) -> None:
    settings.REGISTRY_MAX_IMAGES_PER_REQUEST = 3  # type: ignore[attr-defined]
    with pytest.raises(TooManyImages):
        case_create(
            scope="intimate",
            attestations=ATTESTED,
            terms_version="2026-11",
            language="en",
            images=[random_dihedral() for _ in range(4)],
        )
    assert Case.objects.count() == 0


def test_case_create_failing_midway_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(**kwargs: object) -> None:
        raise DatabaseError("the disk is full")

    # The change sequence is written last: failing there proves everything before is undone.
    monkeypatch.setattr(case_services, "changes_append", fail)
    before = _row_counts()
    with pytest.raises(DatabaseError):
        register_case(images=3)
    assert _row_counts() == before


def test_case_withdraw_stops_matching_in_the_same_transaction(person: RegisteredCase) -> None:
    assert ImageHash.objects.matchable().filter(image__case=person.case).count() == 16
    with transaction.atomic():
        assert services.case_withdraw(case=person.case) is True
        assert ImageHash.objects.matchable().filter(image__case=person.case).count() == 0
    case = Case.objects.get(pk=person.case.pk)
    assert case.status == "withdrawn"
    assert case.withdrawn_at is not None
    assert set(case.images.values_list("status", flat=True)) == {"withdrawn"}
    withdrawn = Change.objects.filter(kind="withdrawn").order_by("pk")
    assert [change.image_id for change in withdrawn] == list(
        case.images.order_by("pk").values_list("pk", flat=True)
    )
    assert AuditEvent.objects.filter(action="case.withdrawn").count() == 1


def test_case_withdraw_is_idempotent(person: RegisteredCase) -> None:
    assert services.case_withdraw(case=person.case) is True
    before = _row_counts()
    withdrawn_at = Case.objects.get(pk=person.case.pk).withdrawn_at
    assert services.case_withdraw(case=person.case) is False
    assert _row_counts() == before
    assert Case.objects.get(pk=person.case.pk).withdrawn_at == withdrawn_at


def test_case_withdraw_failing_midway_leaves_the_case_active(
    person: RegisteredCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(**kwargs: object) -> None:
        raise DatabaseError("connection lost")

    monkeypatch.setattr(case_services, "changes_append", fail)
    before = _row_counts()
    with pytest.raises(DatabaseError):
        services.case_withdraw(case=person.case)
    assert _row_counts() == before
    assert Case.objects.get(pk=person.case.pk).status == "active"
    assert ImageHash.objects.matchable().filter(image__case=person.case).count() == 16


def test_case_add_images_adds_under_the_same_case(person: RegisteredCase) -> None:
    added = case_add_images(case=person.case, images=[random_dihedral()])
    assert len(added) == 1
    assert person.case.images.count() == 3
    assert Change.objects.filter(kind="added", image=added[0]).count() == 1
    assert AuditEvent.objects.filter(action="case.images_added").count() == 1


def test_case_add_images_refuses_a_withdrawn_case(person: RegisteredCase) -> None:
    services.case_withdraw(case=person.case)
    before = _row_counts()
    with pytest.raises(CaseWithdrawn):
        case_add_images(case=person.case, images=[random_dihedral()])
    assert _row_counts() == before


def test_case_add_images_refuses_past_the_per_case_limit(
    person: RegisteredCase, settings: object
) -> None:
    settings.REGISTRY_MAX_IMAGES_PER_CASE = 3  # type: ignore[attr-defined]
    case_add_images(case=person.case, images=[random_dihedral()])
    with pytest.raises(TooManyImages):
        case_add_images(case=person.case, images=[random_dihedral()])
    assert person.case.images.count() == 3


def test_case_check_secret_accepts_the_secret_however_it_is_typed(person: RegisteredCase) -> None:
    typed = person.secret.lower().replace("-", " ")
    assert case_check_secret(reference=person.case.reference.lower(), secret=typed) == person.case


@pytest.mark.parametrize("which", ["wrong secret", "unknown reference", "garbage", "missing"])
def test_case_check_secret_gives_one_answer_for_every_failure(
    person: RegisteredCase, which: str
) -> None:
    reference, secret = {
        "wrong secret": (person.case.reference, "AAAA-BBBB-CCCC-DDDD"),
        "unknown reference": ("RMP-00000-00000", person.secret),
        "garbage": ("'; drop table", "x" * 500),
        "missing": (None, None),
    }[which]
    with pytest.raises(CaseAccessDenied) as raised:
        case_check_secret(reference=reference, secret=secret)
    assert (raised.value.code, raised.value.message) == (
        "case_access_denied", "No case matches this reference and secret.",
    )  # fmt: skip


def test_case_summary_counts_photos_and_reports_status(person: RegisteredCase) -> None:
    summary = case_summary(case=person.case)
    assert (summary.status, summary.scope, summary.images, summary.active_images) == (
        "active", "intimate", 2, 2,
    )  # fmt: skip
    services.case_withdraw(case=person.case)
    person.case.refresh_from_db()
    summary = case_summary(case=person.case)
    assert (summary.status, summary.active_images) == ("withdrawn", 0)
    assert summary.withdrawn_at is not None


@pytest.mark.parametrize("table", ["registry_consentrecord", "registry_auditevent"])
def test_evidence_tables_refuse_update_and_delete_even_in_raw_sql(
    person: RegisteredCase, table: str
) -> None:
    for statement in (f"UPDATE {table} SET created_at = now()", f"DELETE FROM {table}"):  # noqa: S608
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert ConsentRecord.objects.filter(case=person.case).count() == 1


def test_consent_record_refuses_to_save_twice(person: RegisteredCase) -> None:
    consent = person.case.consent
    consent.scope = "no_sexual_edit"
    with pytest.raises(ValueError, match="immutable"):
        consent.save()


def test_database_refuses_a_hash_that_is_not_32_bytes(person: RegisteredCase) -> None:
    image = person.case.images.first()
    assert image is not None
    with pytest.raises(DatabaseError), transaction.atomic():
        ImageHash.objects.create(image=image, variant="custom", value=b"\x01" * 31)


def test_change_sequence_numbers_follow_commit_order() -> None:
    first = register_case(images=1)
    second = register_case(images=1)
    services.case_withdraw(case=first.case)
    kinds = list(Change.objects.order_by("pk").values_list("kind", "image__case"))
    assert kinds == [
        ("added", first.case.pk), ("added", second.case.pk), ("withdrawn", first.case.pk),
    ]  # fmt: skip

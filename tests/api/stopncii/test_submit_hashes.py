"""Hashes submitted by partners: held for review, matched by no one, in no feed, no case."""

from __future__ import annotations

import pytest

from registry.matching.follower import Matcher
from registry.models import AuditEvent, Change, ImageHash, RegisteredImage
from registry.selectors.matches import hash_match
from registry.services.review import image_submit_by_partner
from tests.conftest import PartnerPersona
from tests.factories import random_hash

pytestmark = pytest.mark.django_db


def test_a_submission_enters_as_received_without_a_case(partner_a: PartnerPersona) -> None:
    value = random_hash()

    (image,) = image_submit_by_partner(partner_id=partner_a.partner.pk, hashes=[value])

    image.refresh_from_db()
    assert image.case_id is None
    assert image.submitted_by_partner_id == partner_a.partner.pk
    assert image.status == RegisteredImage.Status.RECEIVED
    assert image.scope == "intimate"
    assert list(ImageHash.objects.filter(image=image).values_list("variant", flat=True)) == [
        "original"
    ]
    assert Change.objects.count() == 0
    event = AuditEvent.objects.get(action="partner.hashes_submitted")
    assert event.actor == f"partner:{partner_a.partner.pk}"
    assert event.details == {"hashes": 1, "new_images": 1}
    assert value.hex() not in str(event.details)


def test_a_hash_submitted_twice_by_one_partner_is_kept_once(
    partner_a: PartnerPersona, partner_b: PartnerPersona
) -> None:
    value = random_hash()

    first = image_submit_by_partner(partner_id=partner_a.partner.pk, hashes=[value, value])
    again = image_submit_by_partner(partner_id=partner_a.partner.pk, hashes=[value])
    other = image_submit_by_partner(partner_id=partner_b.partner.pk, hashes=[value])

    assert first[0].pk == first[1].pk == again[0].pk
    assert other[0].pk != first[0].pk
    assert RegisteredImage.objects.count() == 2


def test_a_submission_matches_nothing_until_reviewed(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    value = random_hash()
    image_submit_by_partner(partner_id=partner_a.partner.pk, hashes=[value])
    match_index.catch_up()

    assert hash_match([value]) == [[]]

"""A review item's own page: who it came from, by name, and the decisions its status allows."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.contrib.auth.models import User
from django.test import Client

from registry.models import RegisteredImage
from registry.services.distribution import feedback_record
from registry.services.review import image_submit_by_partner
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase, random_hash

QUEUE = "/admin/registry/reviewqueueimage/"


def _decisions(html: str) -> list[str]:
    """The decisions offered as buttons: the ``action`` of each form posting to the queue."""
    forms = re.findall(rf'<form method="post" action="{QUEUE}">(.*?)</form>', html, re.S)
    return [re.findall(r'name="action" value="(\w+)"', form)[0] for form in forms]


def test_a_submitted_hash_names_its_partner_and_offers_accept_and_reject(
    partner_b: PartnerPersona, reviewer: User, staff_client: Callable[[User], Client]
) -> None:
    (submitted,) = image_submit_by_partner(partner_id=partner_b.partner.pk, hashes=[random_hash()])

    html = staff_client(reviewer).get(f"{QUEUE}{submitted.pk}/change/").content.decode()

    assert f"{partner_b.partner.name} (a partner&#x27;s submission)" in html
    assert f"partner {partner_b.partner.pk}" not in html
    assert _decisions(html) == ["accept", "reject"]


def test_a_disputed_image_offers_its_decisions_and_the_button_leads_to_the_reason(
    partner_a: PartnerPersona,
    partner_b: PartnerPersona,
    person: RegisteredCase,
    reviewer: User,
    staff_client: Callable[[User], Client],
) -> None:
    image = RegisteredImage.objects.filter(case=person.case).order_by("pk").first()
    assert image is not None
    for persona in (partner_a, partner_b):
        feedback_record(partner_id=persona.partner.pk, image_ids=[image.pk], verdict="not_blocked")
    client = staff_client(reviewer)

    html = client.get(f"{QUEUE}{image.pk}/change/").content.decode()
    assert _decisions(html) == ["suspend", "reinstate", "dismiss"]

    # The button posts what the queue's action does: the page asking for the reason.
    confirm = client.post(QUEUE, {"action": "suspend", "_selected_action": [str(image.pk)]})
    assert confirm.status_code == 200
    assert 'name="reason"' in confirm.content.decode()
    image.refresh_from_db()
    assert image.status == RegisteredImage.Status.DISPUTED

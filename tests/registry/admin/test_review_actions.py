"""The review queue in the admin: what it lists, and each decision taken from it with a reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils.html import escape

from registry.matching import counters
from registry.models import (
    RegisteredImage,
    ReviewDecision,
)
from registry.services import review
from registry.services.distribution import feedback_record
from registry.services.review import image_submit_by_partner
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase, random_hash
from tests.registry.services.test_review import REASON, Status, _disputed, _image

pytestmark = pytest.mark.django_db

# --- The admin -------------------------------------------------------------------------------


QUEUE = "/admin/registry/reviewqueueimage/"


def test_the_queue_lists_disputed_and_submitted_images_oldest_first_with_their_reasons(
    partner_a: PartnerPersona,
    partner_b: PartnerPersona,
    person: RegisteredCase,
    reviewer: User,
    staff_client: Callable[[User], Client],
) -> None:
    (submitted,) = image_submit_by_partner(partner_id=partner_b.partner.pk, hashes=[random_hash()])
    image = _image(person)
    for persona in (partner_a, partner_b):
        feedback_record(partner_id=persona.partner.pk, image_ids=[image.pk], verdict="not_blocked")
    counters.image_matches_record([image.pk] * 7)

    page = staff_client(reviewer).get(QUEUE)

    assert page.status_code == 200
    html = page.content.decode()
    rows = re.findall(r"<tr[^>]*>.*?</tr>", html, re.S)
    queue_rows = [row for row in rows if 'name="_selected_action"' in row]
    listed = [re.findall(r'name="_selected_action" value="(\d+)"', row)[0] for row in queue_rows]
    assert listed == [str(submitted.pk), str(image.pk)]
    assert "submitted by a partner" in queue_rows[0]
    assert "Partners reported not blocking it" in queue_rows[1]
    assert re.search(r'field-partners_not_blocked">2<', queue_rows[1])
    assert re.search(r'field-matches_24h">7<', queue_rows[1])
    assert person.images[0].hashes[0].hex() not in html
    assert person.images[0].hashes[0].hex()[:8] in html  # truncated
    assert str(_image(person, 1).pk) not in listed  # active: not in the queue
    review.image_dispute_dismiss(image=image, reviewer=reviewer, reason="A stock photo.")
    detail = staff_client(reviewer).get(f"{QUEUE}{image.pk}/change/").content.decode()
    assert "A stock photo." in detail  # its decisions, on its page
    assert 'name="_save"' not in detail


def _action(client: Client, action: str, image: RegisteredImage, **extra: str) -> Any:
    return client.post(QUEUE, {"action": action, "_selected_action": [str(image.pk)], **extra})


def test_a_reviewer_suspends_from_the_queue_after_giving_a_reason(
    person: RegisteredCase, reviewer: User, staff_client: Callable[[User], Client]
) -> None:
    image = _disputed(person)
    client = staff_client(reviewer)

    confirm = _action(client, "suspend", image)
    assert confirm.status_code == 200
    assert 'name="reason"' in confirm.content.decode()
    image.refresh_from_db()
    assert image.status == Status.DISPUTED  # nothing until the reason is given

    empty = _action(client, "suspend", image, apply="yes", reason="")
    assert empty.status_code == 200
    image.refresh_from_db()
    assert image.status == Status.DISPUTED

    done = _action(client, "suspend", image, apply="yes", reason=REASON)
    assert done.status_code == 302
    image.refresh_from_db()
    assert image.status == Status.SUSPENDED
    decision = ReviewDecision.objects.get()
    assert (decision.reviewer, decision.reason) == (reviewer, REASON)

    suspended = client.get(QUEUE, {"queue": "suspended"}).content.decode()
    assert f'value="{image.pk}"' in suspended
    reinstated = client.post(
        f"{QUEUE}?queue=suspended",
        {
            "action": "reinstate",
            "_selected_action": [str(image.pk)],
            "apply": "yes",
            "reason": "Cleared.",
        },
    )
    assert reinstated.status_code == 302
    image.refresh_from_db()
    assert image.status == Status.ACTIVE


def test_a_refused_decision_in_the_admin_changes_nothing_and_says_why(
    person: RegisteredCase, reviewer: User, staff_client: Callable[[User], Client]
) -> None:
    image = _disputed(person)
    client = staff_client(reviewer)

    response = _action(client, "accept", image, apply="yes", reason=REASON)

    assert response.status_code == 302
    image.refresh_from_db()
    assert image.status == Status.DISPUTED
    followed = client.get(response["Location"]).content.decode()
    assert "Refused, image" in followed


@pytest.mark.parametrize("decision", ["suspend", "dismiss"])
def test_a_staff_member_who_is_not_a_reviewer_can_neither_see_nor_decide(
    decision: str, person: RegisteredCase, staff_client: Callable[[User], Client]
) -> None:
    image = _disputed(person)
    staff = User.objects.create_user("staff", password="a long staff password", is_staff=True)
    client = staff_client(staff)

    listing = client.get(QUEUE)
    posted = _action(client, decision, image, apply="yes", reason=REASON)

    assert listing.status_code != 200
    assert posted.status_code != 200
    image.refresh_from_db()
    assert image.status == Status.DISPUTED
    assert ReviewDecision.objects.count() == 0


def test_a_superuser_may_decide_too(
    person: RegisteredCase, superuser: User, staff_client: Callable[[User], Client]
) -> None:
    image = _disputed(person)

    response = _action(staff_client(superuser), "dismiss", image, apply="yes", reason=REASON)

    assert response.status_code == 302
    image.refresh_from_db()
    assert image.status == Status.ACTIVE


def test_decisions_are_listed_read_only(
    person: RegisteredCase, reviewer: User, superuser: User, staff_client: Callable[[User], Client]
) -> None:
    decision = review.image_suspend(image=_disputed(person), reviewer=reviewer, reason=REASON)
    client = staff_client(superuser)

    listing = client.get("/admin/registry/reviewdecision/")
    detail = client.get(f"/admin/registry/reviewdecision/{decision.pk}/change/")
    deleted = client.post(f"/admin/registry/reviewdecision/{decision.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200
    assert "suspend" in listing.content.decode()
    assert escape(REASON) in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()
    assert deleted.status_code == 403
    assert client.get("/admin/registry/reviewdecision/add/").status_code == 403
    assert ReviewDecision.objects.count() == 1

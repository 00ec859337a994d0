"""The review workflow: disputes, reviewers' decisions, what partners see, and the admin queue."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from registry import tasks
from registry.celery import app as celery_app
from registry.exceptions import InvalidInput
from registry.match_ids import match_id_encode
from registry.matching import counters
from registry.matching.follower import Matcher
from registry.models import (
    AuditEvent,
    Change,
    Partner,
    RegisteredImage,
    ReviewDecision,
    WebhookDelivery,
)
from registry.services import review
from registry.services.cases import case_withdraw
from registry.services.distribution import feedback_record
from registry.services.review import image_submit_by_partner
from registry.webhooks.outbox import deliveries_derive
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase, random_hash, register_case

pytestmark = pytest.mark.django_db

Status = RegisteredImage.Status
REASON = "Two platforms showed it is a stock photo, not the person's."


def _image(person: RegisteredCase, position: int = 0) -> RegisteredImage:
    return RegisteredImage.objects.filter(case=person.case).order_by("pk")[position]


def _disputed(person: RegisteredCase) -> RegisteredImage:
    image = _image(person)
    assert review.images_dispute(
        image_ids=[image.pk], reason=RegisteredImage.DisputeReason.PARTNER_REPORTS
    ) == [image.pk]
    image.refresh_from_db()
    return image


def _match(persona: PartnerPersona, values: list[bytes]) -> list[list[dict[str, Any]]]:
    response = Client().post(
        "/api/v1/match",
        json.dumps({"hashes": [value.hex() for value in values], "purpose": "publish"}),
        content_type="application/json",
        headers=persona.auth,
    )
    assert response.status_code == 200
    return [result["matches"] for result in response.json()["results"]]


def _feed(persona: PartnerPersona, cursor: str = "") -> dict[str, Any]:
    response = Client().get("/api/v1/hashes/changes", {"cursor": cursor}, headers=persona.auth)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def hooked() -> Partner:
    """A partner with a webhook, joined before anything was registered."""
    return Partner.objects.create(
        name="Hooked Platform", webhook_url="https://hooks.example/x", webhook_secret="s"
    )


# --- The decisions ---------------------------------------------------------------------------


def test_a_disputed_image_keeps_matching_flagged_disputed(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    _disputed(person)

    (matches,) = _match(partner_a, [person.images[0].hashes[0]])

    assert [match["status"] for match in matches] == ["disputed"]


def test_suspending_stops_matching_and_partners_receive_a_removal(
    partner_a: PartnerPersona,
    person: RegisteredCase,
    reviewer: User,
    match_index: Matcher,
    hooked: Partner,
) -> None:
    image = _disputed(person)
    cursor = _feed(partner_a)["next_cursor"]
    deliveries_derive()

    decision = review.image_suspend(image=image, reviewer=reviewer, reason=REASON)

    assert (image.status, decision.from_status, decision.to_status) == (
        Status.SUSPENDED,
        Status.DISPUTED,
        Status.SUSPENDED,
    )
    assert (decision.reviewer, decision.reason, decision.decision) == (reviewer, REASON, "suspend")
    assert _match(partner_a, [person.images[0].hashes[0]]) == [[]]  # at once, before catch-up
    match_index.catch_up()
    assert match_index.search([person.images[0].hashes[0]], max_distance=31)[0][0].size == 0
    (entry,) = _feed(partner_a, cursor)["entries"]
    assert (entry["kind"], entry["status"]) == ("withdrawn", "suspended")
    assert "hashes" not in entry
    deliveries_derive()
    (delivery,) = WebhookDelivery.objects.filter(change__kind=Change.Kind.SUSPENDED)
    assert delivery.event_type == "image.withdrawn"
    assert delivery.payload["data"]["reason"] == "suspended"
    assert delivery.payload["data"]["id"] == match_id_encode(
        image_id=image.pk, partner_id=hooked.pk
    )
    event = AuditEvent.objects.get(action="review.decided")
    assert (event.actor, event.subject) == (f"staff:{reviewer.pk}", f"image:{image.pk}")
    assert event.details == {
        "decision": "suspend",
        "from": "disputed",
        "to": "suspended",
        "reason": REASON,
    }


def _stopncii_statuses(persona: PartnerPersona, value: bytes) -> list[tuple[str, list[str]]]:
    response = Client().get(
        "/v1/FetchHashes",
        {"startTimestamp": 10},
        headers={"Ocp-Apim-Subscription-Key": persona.raw_key, "x-functions-key": "f"},
    )
    assert response.status_code == 200
    return [
        (record["hashStatus"], sorted(record["caseNumbers"].values()))
        for record in response.json()["hashRecords"]
        if record["hashValue"] == value.hex()
    ]


def test_the_stopncii_feed_shows_a_suspended_image_withdrawn_then_active_again(
    partner_a: PartnerPersona, person: RegisteredCase, reviewer: User
) -> None:
    value = person.images[0].hashes[0]
    assert _stopncii_statuses(partner_a, value) == [("Active", ["Active"])]
    image = _disputed(person)

    review.image_suspend(image=image, reviewer=reviewer, reason=REASON)
    suspended = _stopncii_statuses(partner_a, value)
    review.image_reinstate(image=image, reviewer=reviewer, reason=REASON)
    reinstated = _stopncii_statuses(partner_a, value)

    assert suspended[-1] == ("Withdrawn", ["Withdrawn"])
    assert reinstated[-1] == ("Active", ["Active"])


def test_reinstating_a_suspended_image_matches_again_and_partners_receive_an_addition(
    partner_a: PartnerPersona,
    person: RegisteredCase,
    reviewer: User,
    match_index: Matcher,
    hooked: Partner,
) -> None:
    image = _disputed(person)
    review.image_suspend(image=image, reviewer=reviewer, reason=REASON)
    cursor = _feed(partner_a)["next_cursor"]
    deliveries_derive()

    review.image_reinstate(image=image, reviewer=reviewer, reason="The person confirmed it.")

    assert (image.status, image.dispute_reason, image.disputed_at) == (Status.ACTIVE, "", None)
    # Suspended then reinstated, both read in one catch-up: the index holds the image again.
    match_index.catch_up()
    found = match_index.search([person.images[0].hashes[0]], max_distance=0)
    assert found[0][0].size == 1
    assert [m["status"] for m in _match(partner_a, [person.images[0].hashes[0]])[0]] == ["active"]
    (entry,) = _feed(partner_a, cursor)["entries"]
    assert (entry["kind"], entry["status"]) == ("added", "active")
    assert [item["hash"] for item in entry["hashes"]] == [v.hex() for v in person.images[0].hashes]
    deliveries_derive()
    latest = WebhookDelivery.objects.order_by("-change_id").first()
    assert latest is not None
    assert latest.event_type == "image.added"


def test_suspend_and_reinstate_in_one_catch_up_leave_the_image_matchable(
    person: RegisteredCase, reviewer: User, match_index: Matcher
) -> None:
    image = _disputed(person)
    review.image_suspend(image=image, reviewer=reviewer, reason=REASON)
    review.image_reinstate(image=image, reviewer=reviewer, reason=REASON)

    match_index.catch_up()

    assert match_index.search([person.images[0].hashes[0]], max_distance=0)[0][0].size == 1


def test_dismissing_a_dispute_returns_the_image_to_active_without_telling_partners(
    partner_a: PartnerPersona, person: RegisteredCase, reviewer: User
) -> None:
    image = _disputed(person)
    changes = Change.objects.count()

    review.image_dispute_dismiss(image=image, reviewer=reviewer, reason=REASON)

    assert (image.status, image.dispute_reason) == (Status.ACTIVE, "")
    assert Change.objects.count() == changes  # it never stopped matching
    assert ReviewDecision.objects.get().decision == "dismiss"


def test_accepting_a_partner_submission_makes_it_match_and_enter_the_feed(
    partner_a: PartnerPersona, partner_b: PartnerPersona, reviewer: User, match_index: Matcher
) -> None:
    value = random_hash()
    (image,) = image_submit_by_partner(partner_id=partner_b.partner.pk, hashes=[value])
    assert _match(partner_a, [value]) == [[]]

    review.image_submission_accept(image=image, reviewer=reviewer, reason="Verified by a helpline.")

    assert image.status == Status.ACTIVE
    match_index.catch_up()  # what every process's follower does within INDEX_POLL_MS
    assert match_index.search([value], max_distance=0)[0][0].size == 1
    assert [m["status"] for m in _match(partner_a, [value])[0]] == ["active"]
    (entry,) = _feed(partner_a)["entries"]
    assert (entry["kind"], entry["hashes"]) == (
        "added",
        [{"variant": "original", "kind": "whole", "hash": value.hex()}],
    )


def test_rejecting_a_partner_submission_keeps_it_out_of_matches_and_feeds(
    partner_a: PartnerPersona, partner_b: PartnerPersona, reviewer: User
) -> None:
    value = random_hash()
    (image,) = image_submit_by_partner(partner_id=partner_b.partner.pk, hashes=[value])

    review.image_submission_reject(image=image, reviewer=reviewer, reason="A known meme.")

    assert image.status == Status.REJECTED
    assert _match(partner_a, [value]) == [[]]
    assert _feed(partner_a)["entries"] == []
    assert Change.objects.filter(image=image).count() == 0


def _image_in(status: str, person: RegisteredCase, partner: PartnerPersona, reviewer: User) -> Any:
    if status in (Status.RECEIVED, Status.REJECTED):
        (image,) = image_submit_by_partner(partner_id=partner.partner.pk, hashes=[random_hash()])
        if status == Status.REJECTED:
            review.image_submission_reject(image=image, reviewer=reviewer, reason=REASON)
        return image
    if status == Status.WITHDRAWN:
        case_withdraw(case=person.case)
        return _image(person)
    image = _disputed(person) if status != Status.ACTIVE else _image(person)
    if status == Status.SUSPENDED:
        review.image_suspend(image=image, reviewer=reviewer, reason=REASON)
    return image


ALLOWED = {
    ("suspend", Status.DISPUTED),
    ("reinstate", Status.DISPUTED),
    ("reinstate", Status.SUSPENDED),
    ("dismiss", Status.DISPUTED),
    ("accept", Status.RECEIVED),
    ("reject", Status.RECEIVED),
}
ALL_STATUSES = [
    Status.ACTIVE,
    Status.DISPUTED,
    Status.SUSPENDED,
    Status.RECEIVED,
    Status.REJECTED,
    Status.WITHDRAWN,
]


@pytest.mark.parametrize("decision", ReviewDecision.Decision.values)
@pytest.mark.parametrize("status", ALL_STATUSES)
def test_each_decision_is_allowed_only_from_its_statuses(
    decision: str,
    status: str,
    person: RegisteredCase,
    partner_a: PartnerPersona,
    reviewer: User,
) -> None:
    image = _image_in(status, person, partner_a, reviewer)
    decisions, changes, events = (
        ReviewDecision.objects.count(),
        Change.objects.count(),
        AuditEvent.objects.count(),
    )

    if (decision, status) in ALLOWED:
        made = review.image_review_decide(
            image=image, decision=decision, reviewer=reviewer, reason=REASON
        )
        assert made.from_status == status
        assert ReviewDecision.objects.count() == decisions + 1
        return
    with pytest.raises(InvalidInput) as refused:
        review.image_review_decide(image=image, decision=decision, reviewer=reviewer, reason=REASON)
    assert refused.value.code == "review_transition_invalid"
    image.refresh_from_db()
    assert image.status == status
    assert (
        ReviewDecision.objects.count(),
        Change.objects.count(),
        AuditEvent.objects.count(),
    ) == (decisions, changes, events)


def test_a_withdrawn_image_is_never_reinstated_even_if_it_was_suspended(
    person: RegisteredCase, reviewer: User
) -> None:
    image = _disputed(person)
    review.image_suspend(image=image, reviewer=reviewer, reason=REASON)

    case_withdraw(case=person.case)

    image.refresh_from_db()
    assert image.status == Status.WITHDRAWN
    assert set(person.case.images.values_list("status", flat=True)) == {Status.WITHDRAWN}
    with pytest.raises(InvalidInput, match="withdrawn"):
        review.image_reinstate(image=image, reviewer=reviewer, reason=REASON)


def test_a_decision_needs_a_reviewer_and_a_reason(person: RegisteredCase, reviewer: User) -> None:
    image = _disputed(person)
    staff = User.objects.create_user("staff", password="a long staff password", is_staff=True)

    with pytest.raises(InvalidInput) as not_reviewer:
        review.image_suspend(image=image, reviewer=staff, reason=REASON)
    with pytest.raises(InvalidInput) as no_reason:
        review.image_suspend(image=image, reviewer=reviewer, reason="   ")

    assert (not_reviewer.value.code, no_reason.value.code) == (
        "review_not_allowed",
        "review_reason_required",
    )
    image.refresh_from_db()
    assert image.status == Status.DISPUTED
    assert ReviewDecision.objects.count() == 0


def test_a_hash_pasted_into_a_reason_is_never_kept(person: RegisteredCase, reviewer: User) -> None:
    image = _disputed(person)
    pasted = person.images[0].hashes[0].hex()

    decision = review.image_suspend(image=image, reviewer=reviewer, reason=f"matches {pasted}")

    assert decision.reason == "matches [hash]"
    assert pasted not in json.dumps(AuditEvent.objects.get(action="review.decided").details)


def test_a_decision_is_kept_as_evidence(person: RegisteredCase, reviewer: User) -> None:
    decision = review.image_suspend(image=_disputed(person), reviewer=reviewer, reason=REASON)

    with pytest.raises(Exception, match="append-only"):
        ReviewDecision.objects.filter(pk=decision.pk).update(reason="changed")


# --- Dispute triggers ------------------------------------------------------------------------


def _report(persona: PartnerPersona, image: RegisteredImage, verdict: str) -> Any:
    return Client().post(
        "/api/v1/feedback",
        json.dumps(
            {
                "match_id": match_id_encode(image_id=image.pk, partner_id=persona.partner.pk),
                "verdict": verdict,
            }
        ),
        content_type="application/json",
        headers=persona.auth,
    )


def test_two_partners_reporting_not_blocked_dispute_the_image(
    partner_a: PartnerPersona, partner_b: PartnerPersona, person: RegisteredCase
) -> None:
    image = _image(person)
    assert _report(partner_a, image, "not_blocked").status_code == 201
    assert _report(partner_a, image, "not_blocked").status_code == 201  # the same partner again
    assert _report(partner_b, image, "blocked").status_code == 201
    image.refresh_from_db()
    assert image.status == Status.ACTIVE

    assert _report(partner_b, image, "not_blocked").status_code == 201

    image.refresh_from_db()
    assert (image.status, image.dispute_reason) == (Status.DISPUTED, "partner_reports")
    assert image.disputed_at is not None
    event = AuditEvent.objects.get(action="image.disputed")
    assert (event.actor, event.subject) == ("system", f"image:{image.pk}")
    assert event.details == {"reason": "partner_reports", "partners_not_blocked": 2}
    assert _image(person, 1).status == Status.ACTIVE


def test_not_blocked_reports_through_the_service_dispute_as_well(
    partner_a: PartnerPersona, partner_b: PartnerPersona, person: RegisteredCase
) -> None:
    image = _image(person)
    for persona in (partner_a, partner_b):
        feedback_record(partner_id=persona.partner.pk, image_ids=[image.pk], verdict="not_blocked")

    image.refresh_from_db()
    assert image.status == Status.DISPUTED


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def test_matches_are_counted_per_image_with_no_hash_in_redis(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    first, second = _image(person), _image(person, 1)
    values = [person.images[0].hashes[0], person.images[0].hashes[3], person.images[1].hashes[0]]

    _match(partner_a, values)
    _match(partner_a, [random_hash()])

    assert counters.image_match_counts(image_ids=[first.pk, second.pk]) == {
        first.pk: 2,
        second.pk: 1,
    }
    client = _redis()
    stored = " ".join(
        f"{key!r} {client.hgetall(key)!r}" for key in client.scan_iter("*review:image-matches*")
    )
    assert str(first.pk) in stored
    assert not re.search(r"[0-9a-f]{64}", stored)
    assert not any(value.hex() in stored for value in values)


def test_an_image_matching_far_more_than_usual_is_disputed(settings: SettingsWrapper) -> None:
    settings.REVIEW_SPIKE_FLOOR = 20
    settings.REVIEW_SPIKE_MULTIPLE = 10
    quiet = register_case(images=6)
    images = list(quiet.case.images.order_by("pk"))
    moment = 1_800_000_000.0
    for image in images[:5]:
        counters.image_matches_record([image.pk] * 2, moment=moment - 3600 * 5)
    counters.image_matches_record([images[5].pk] * 15, moment=moment - 3600 * 23)
    counters.image_matches_record([images[5].pk] * 15, moment=moment)
    counters.image_matches_record([images[4].pk] * 500, moment=moment - 3600 * 24)  # too old

    disputed = review.images_dispute_on_match_spikes(moment=moment)

    # Typical: the median of (2, 2, 2, 2, 2, 30) is 2, so the bar is max(20, 10 * 2) = 20.
    assert disputed == [images[5].pk]
    images[5].refresh_from_db()
    assert (images[5].status, images[5].dispute_reason) == (Status.DISPUTED, "match_spike")
    event = AuditEvent.objects.get(action="image.disputed")
    assert event.details == {"reason": "match_spike", "matches_24h": 30, "threshold": 20}
    assert review.images_dispute_on_match_spikes(moment=moment) == []  # already disputed


def test_the_floor_keeps_a_quiet_registry_from_disputing(settings: SettingsWrapper) -> None:
    settings.REVIEW_SPIKE_FLOOR = 200
    settings.REVIEW_SPIKE_MULTIPLE = 10
    images = list(register_case(images=3).case.images.order_by("pk"))
    counters.image_matches_record([images[0].pk, images[1].pk, *[images[2].pk] * 150])

    assert review.images_dispute_on_match_spikes() == []


def test_the_spike_check_runs_on_celery_beat() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["image-match-spikes"]
    assert entry["task"] == tasks.images_dispute_on_match_spikes_task.name
    assert entry["task"] in celery_app.tasks

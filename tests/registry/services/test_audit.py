"""The audit record's hash chain: intact after real writes, broken by any edit behind its back."""

from __future__ import annotations

import io
import itertools

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from registry.models import AuditEvent
from registry.services.audit import GENESIS, chain_verify
from registry.services.cases import case_withdraw
from registry.services.partners import partner_create, partner_key_issue, partner_key_revoke
from tests.factories import register_case

pytestmark = pytest.mark.django_db


def _history() -> list[AuditEvent]:
    registered = register_case(images=1)
    case_withdraw(case=registered.case)
    partner = partner_create(name="Chain")
    partner_key_revoke(key=partner_key_issue(partner=partner, scopes=["match"]).key)
    return list(AuditEvent.objects.order_by("id"))


def test_each_event_links_to_the_one_before() -> None:
    events = _history()
    assert len(events) == 5
    assert events[0].previous_digest == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.previous_digest == before.digest
    assert len({event.digest for event in events}) == 5


def test_audit_verify_reports_an_intact_chain() -> None:
    _history()
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().strip() == "Audit chain intact: 5 events verified."


def _tamper(statement: str, parameters: list[str | int]) -> None:
    """Change the table directly in PostgreSQL, as someone with database access could."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE registry_auditevent DISABLE TRIGGER USER")
        cursor.execute(statement, parameters)
        cursor.execute("ALTER TABLE registry_auditevent ENABLE TRIGGER USER")


def test_an_event_altered_in_place_is_named() -> None:
    events = _history()
    _tamper(
        "UPDATE registry_auditevent SET details = %s WHERE id = %s",
        ['{"images": 0}', events[2].pk],
    )
    with pytest.raises(CommandError, match=f"broken at event {events[2].pk}: its content"):
        call_command("audit_verify", stdout=io.StringIO())


def test_an_event_removed_is_found_at_the_next_one() -> None:
    events = _history()
    _tamper("DELETE FROM registry_auditevent WHERE id = %s", [events[1].pk])
    checked, broken = chain_verify()
    assert checked == 1
    assert broken is not None
    assert broken.event_id == events[2].pk
    assert "link" in broken.reason


def test_an_event_rewritten_with_a_new_digest_is_named() -> None:
    events = _history()
    _tamper(
        "UPDATE registry_auditevent SET actor = %s, digest = %s WHERE id = %s",
        ["staff:1", "f" * 64, events[3].pk],
    )
    checked, broken = chain_verify()
    assert broken is not None
    assert broken.event_id == events[3].pk
    assert checked == 3

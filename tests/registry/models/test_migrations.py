"""The move of the partner models from api to registry keeps every row and gains foreign keys.

The database is migrated back to the schema before the move, filled through the historical
models as a deployment would hold it (cases, images and hashes, partners and keys, match calls,
disclosures, feedback, acknowledgements, webhook deliveries, a partner's submission, an
idempotency record, a probing alert), then migrated forward: every row is still there, every
partner id names its partner through a foreign key, and PostgreSQL enforces each one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("registry", "0007_audit_actions_partner_staff"), ("api", "0004_probing_alert")]
AFTER = [("registry", "0009_partner_foreign_keys"), ("api", "0005_partners_move_to_registry")]
NOW = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.fixture
def before_the_move() -> Iterator[Any]:
    apps = _migrate(BEFORE)
    yield apps
    # Leave the database as every other test expects it: at the latest migrations.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _fill(apps: Any) -> dict[str, Any]:
    partner_model = apps.get_model("api", "Partner")
    key_model = apps.get_model("api", "PartnerKey")
    platform = partner_model.objects.create(name="Platform", sync_scopes=["intimate"])
    helpline = partner_model.objects.create(name="Helpline")
    key = key_model.objects.create(
        partner=platform, lookup_id="abcdEFGH1234", digest="0" * 64, scopes=["match"]
    )
    case = apps.get_model("registry", "Case").objects.create(
        reference="RMP-AAAAA-BBBBB", secret_digest="argon2$x", created_at=NOW
    )
    apps.get_model("registry", "ConsentRecord").objects.create(
        case=case,
        scope="intimate",
        depicted_or_acting_for=True,
        rights_to_register=True,
        minor_depicted=False,
        terms_version="2026-11",
        language="en",
        created_at=NOW,
    )
    image_model = apps.get_model("registry", "RegisteredImage")
    image = image_model.objects.create(
        case=case, scope="intimate", minor_depicted=False, quality=90, created_at=NOW
    )
    submitted = image_model.objects.create(
        submitted_by_partner=helpline.pk,
        scope="intimate",
        minor_depicted=False,
        quality=100,
        status="received",
        created_at=NOW,
    )
    apps.get_model("registry", "ImageHash").objects.create(
        image=image, variant="original", value=bytes(range(32))
    )
    change = apps.get_model("registry", "Change").objects.create(
        kind="added", image=image, created_at=NOW
    )
    apps.get_model("registry", "Disclosure").objects.create(
        partner_id=platform.pk, image=image, first_disclosed_at=NOW, last_disclosed_at=NOW
    )
    apps.get_model("registry", "Feedback").objects.create(
        partner_id=platform.pk, image=image, verdict="blocked", created_at=NOW
    )
    apps.get_model("registry", "WithdrawalAck").objects.create(
        partner_id=helpline.pk, image=image, acknowledged_at=NOW
    )
    apps.get_model("api", "MatchCall").objects.create(
        partner=platform, key=key, purpose="publish", hashes=3, matched_hashes=1, matches=1
    )
    apps.get_model("api", "WebhookDelivery").objects.create(
        partner=platform, change=change, webhook_id="wh_1", event_type="image.added", payload={}
    )
    apps.get_model("api", "IdempotencyRecord").objects.create(
        scope="partner:1", key_digest="1" * 64, request_digest="2" * 64
    )
    apps.get_model("api", "ProbingAlert").objects.create(
        key=key,
        partner=platform,
        reason="clustered_queries",
        queries=500,
        matched_queries=3,
        close_pairs=64,
    )
    return {
        "platform": platform.pk,
        "helpline": helpline.pk,
        "key": key.pk,
        "image": image.pk,
        "submitted": submitted.pk,
    }


def _counts(apps: Any, labels: list[str]) -> dict[str, int]:
    return {label: apps.get_model(label).objects.count() for label in labels}


def test_the_move_keeps_every_row_and_turns_partner_ids_into_foreign_keys(
    before_the_move: Any,
) -> None:
    ids = _fill(before_the_move)
    moved = ["Partner", "PartnerKey", "MatchCall", "WebhookDelivery"]
    moved += ["IdempotencyRecord", "ProbingAlert"]
    kept = ["Case", "ConsentRecord", "RegisteredImage", "ImageHash", "Change"]
    kept += ["Disclosure", "Feedback", "WithdrawalAck"]
    before = _counts(before_the_move, [f"api.{name}" for name in moved])
    before |= _counts(before_the_move, [f"registry.{name}" for name in kept])

    apps = _migrate(AFTER)

    after = _counts(apps, [f"registry.{name}" for name in moved + kept])
    assert {label.split(".")[1]: n for label, n in after.items()} == {
        label.split(".")[1]: n for label, n in before.items()
    }
    assert all(count >= 1 for count in after.values())
    partner = apps.get_model("registry", "Partner")
    platform = partner.objects.get(pk=ids["platform"])
    helpline = partner.objects.get(pk=ids["helpline"])
    assert platform.name == "Platform"
    assert platform.sync_scopes == ["intimate"]
    assert platform.keys.get().pk == ids["key"]
    assert apps.get_model("registry", "Disclosure").objects.get().partner == platform
    assert apps.get_model("registry", "Feedback").objects.get().partner == platform
    assert apps.get_model("registry", "WithdrawalAck").objects.get().partner == helpline
    image = apps.get_model("registry", "RegisteredImage")
    assert image.objects.get(pk=ids["submitted"]).submitted_by_partner == helpline
    assert image.objects.get(pk=ids["image"]).submitted_by_partner is None
    assert apps.get_model("registry", "MatchCall").objects.get().partner == platform
    assert apps.get_model("registry", "ProbingAlert").objects.get().key.pk == ids["key"]


def test_after_the_move_postgresql_refuses_a_partner_id_that_names_no_partner(
    before_the_move: Any,
) -> None:
    _fill(before_the_move)
    apps = _migrate(AFTER)
    disclosure = apps.get_model("registry", "Disclosure")
    image = apps.get_model("registry", "RegisteredImage").objects.first()
    for table in ["registry_disclosure", "registry_feedback", "registry_withdrawalack"]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT ccu.table_name FROM information_schema.table_constraints tc "
                "JOIN information_schema.constraint_column_usage ccu "
                "ON tc.constraint_name = ccu.constraint_name "
                "WHERE tc.table_name = %s AND tc.constraint_type = 'FOREIGN KEY' "
                "AND tc.constraint_name LIKE %s",
                [table, "%partner_id%"],
            )
            assert cursor.fetchall() == [("api_partner",)]
    with pytest.raises(IntegrityError), transaction.atomic():
        disclosure.objects.create(
            partner_id=999_999, image=image, first_disclosed_at=NOW, last_disclosed_at=NOW
        )

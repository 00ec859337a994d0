"""The database router: which alias each kind of read and write goes to (registry/dbrouting.py).

No streaming replica here (tests/registry/test_replica.py has one): the ``replica`` alias is a
second connection to the test database, read-only as DATABASE_REPLICA_URL's is, so that each
query's alias is seen on the connection that ran it (``CaptureQueriesContext``) and a write
routed to it by mistake would fail. Transactional tests: inside the suite's usual transaction,
the router keeps every read on the primary, by design.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connections, transaction
from django.db.utils import InternalError
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pytest_django import DjangoDbBlocker

from registry.dbrouting import PRIMARY, REPLICA, PrimaryReplicaRouter, primary_reads, replica_reads
from registry.matching import follower
from registry.matching.follower import Matcher
from registry.models import Change, Disclosure, ImageHash, Partner, PartnerKey, RegisteredImage
from registry.selectors import ImageMatch, hash_match, stats
from registry.services.cases import case_withdraw
from tests.conftest import PartnerPersona
from tests.factories import register_case

pytestmark = pytest.mark.django_db(transaction=True, databases=[PRIMARY, REPLICA])


@pytest.fixture(scope="module", autouse=True)
def replica_alias(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """A ``replica`` alias for this module: the test database, through a read-only session."""
    primary = connections.settings[PRIMARY]
    connections.settings[REPLICA] = {
        **primary,
        "OPTIONS": {**primary["OPTIONS"], "options": "-c default_transaction_read_only=on"},
        "TEST": {**primary["TEST"], "MIRROR": PRIMARY},
    }
    yield
    with django_db_blocker.unblock():
        connections[REPLICA].close()
    del connections[REPLICA]
    del connections.settings[REPLICA]


def _aliases_used(action: object) -> dict[str, int]:
    """How many queries ``action()`` ran on each alias."""
    with (
        CaptureQueriesContext(connections[PRIMARY]) as on_primary,
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
    ):
        assert callable(action)
        action()
    return {PRIMARY: len(on_primary), REPLICA: len(on_replica)}


def test_reads_go_to_the_primary_outside_the_scope() -> None:
    assert ImageHash.objects.all().db == PRIMARY
    assert Change.objects.all().db == PRIMARY


def test_reads_inside_the_scope_go_to_the_replica() -> None:
    case = register_case(images=1)

    with replica_reads():
        assert ImageHash.objects.all().db == REPLICA
        used = _aliases_used(lambda: list(RegisteredImage.objects.filter(case=case.case)))

    assert used == {PRIMARY: 0, REPLICA: 1}


def test_the_scope_ends_with_its_block() -> None:
    with replica_reads():
        pass

    assert Change.objects.all().db == PRIMARY


@pytest.mark.parametrize("model", [PartnerKey, Disclosure, User])
def test_keys_the_disclosure_ledger_and_staff_accounts_are_read_from_the_primary_in_the_scope(
    model: type[PartnerKey | Disclosure | User],
) -> None:
    with replica_reads():
        assert model.objects.all().db == PRIMARY


def test_reads_inside_a_transaction_on_the_primary_stay_on_it() -> None:
    with replica_reads(), transaction.atomic():
        partner = Partner.objects.create(name="Read your writes")
        assert Partner.objects.all().db == PRIMARY
        assert Partner.objects.filter(pk=partner.pk).exists()
    with replica_reads():
        assert Partner.objects.all().db == REPLICA


def test_writes_inside_the_scope_go_to_the_primary() -> None:
    with replica_reads():
        used = _aliases_used(lambda: Partner.objects.create(name="Written in the scope"))
        partner = Partner.objects.get(name="Written in the scope")
        assert partner._state.db == REPLICA
        partner.name = "Saved after a replica read"
        partner.save()

    assert used == {PRIMARY: 1, REPLICA: 0}
    assert Partner.objects.using(PRIMARY).get(pk=partner.pk).name == "Saved after a replica read"


def test_the_replica_session_refuses_a_write_sent_there_directly() -> None:
    with pytest.raises(InternalError, match="read-only transaction"):
        Partner.objects.using(REPLICA).create(name="Never written")


def test_hash_match_confirms_its_candidates_on_the_primary_even_in_the_scope() -> None:
    case = register_case(images=1)
    matcher = Matcher()
    matcher.load()
    with replica_reads():
        assert Change.objects.all().db == REPLICA
        with primary_reads():
            assert Change.objects.all().db == PRIMARY
        assert Change.objects.all().db == REPLICA

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(follower, "_matcher", matcher)
        found: list[list[ImageMatch]] = []
        with replica_reads():
            used = _aliases_used(lambda: found.extend(hash_match([case.images[0].hashes[0]])))

    assert [[match.image_id for match in matches] for matches in found] == [
        list(RegisteredImage.objects.filter(case=case.case).values_list("id", flat=True))
    ]
    assert used[REPLICA] == 0
    assert used[PRIMARY] >= 1


def test_a_thread_started_in_the_scope_reads_the_primary() -> None:
    seen: list[str] = []

    def read() -> None:
        seen.append(Change.objects.all().db)
        connections.close_all()

    with replica_reads():
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()

    assert seen == [PRIMARY]


def test_without_a_replica_the_scope_reads_the_primary() -> None:
    router = PrimaryReplicaRouter(replica=None)
    unconfigured = PrimaryReplicaRouter(replica="replica-not-configured")

    with replica_reads():
        assert router.db_for_read(ImageHash) == PRIMARY
        assert unconfigured.db_for_read(ImageHash) == PRIMARY
        assert PrimaryReplicaRouter().db_for_read(ImageHash) == REPLICA


def test_only_the_primary_is_migrated() -> None:
    router = PrimaryReplicaRouter()

    assert router.allow_migrate(PRIMARY, "registry")
    assert not router.allow_migrate(REPLICA, "registry")
    assert router.db_for_write(ImageHash) == PRIMARY


def test_the_index_loads_and_follows_from_the_replica() -> None:
    register_case(images=1)
    matcher = Matcher()

    loaded = _aliases_used(matcher.load)
    assert matcher.status().size == 8
    register_case(images=1)
    followed = _aliases_used(matcher.catch_up)

    # The head of the sequence, then the changes since; the hashes' COPY runs on the same
    # connection's raw cursor, which CaptureQueriesContext does not see (load_matchable takes
    # the router's alias).
    assert loaded[PRIMARY] == 0
    assert loaded[REPLICA] >= 2
    assert followed[PRIMARY] == 0
    assert followed[REPLICA] >= 2
    assert matcher.status().size == 16


def test_the_statistics_read_the_replica() -> None:
    register_case(images=1)

    used = _aliases_used(lambda: stats.daily_stats(with_partners=True))

    assert used[PRIMARY] == 0
    assert used[REPLICA] > 0


def test_the_sync_feed_reads_the_replica_and_records_disclosures_on_the_primary(
    partner_a: PartnerPersona,
) -> None:
    case = register_case(images=2)

    with (
        CaptureQueriesContext(connections[PRIMARY]) as on_primary,
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
    ):
        response = Client().get("/api/v1/hashes/changes", headers=partner_a.auth)

    assert response.status_code == 200
    assert len(response.json()["entries"]) == 2
    on_replica_sql = " ".join(query["sql"] for query in on_replica.captured_queries)
    on_primary_sql = " ".join(query["sql"] for query in on_primary.captured_queries)
    assert '"registry_change"' in on_replica_sql
    assert '"registry_imagehash"' in on_replica_sql
    assert "api_partnerkey" not in on_replica_sql
    assert "registry_disclosure" not in on_replica_sql
    assert "api_partnerkey" in on_primary_sql  # the key check
    assert 'INSERT INTO "registry_disclosure"' in on_primary_sql
    assert "registry_change" not in on_primary_sql
    images = RegisteredImage.objects.filter(case=case.case)
    assert Disclosure.objects.filter(partner=partner_a.partner, image__in=images).count() == 2


def test_the_stopncii_feed_reads_the_disclosure_ledger_on_the_primary(
    partner_a: PartnerPersona,
) -> None:
    case = register_case(images=1)
    headers = {"Ocp-Apim-Subscription-Key": partner_a.raw_key, "x-functions-key": "any"}
    first = Client().get("/v1/FetchHashes", headers=headers)
    assert first.status_code == 200
    since = first.json()["nextSetTimestamp"]
    case_withdraw(case=case.case)

    with (
        CaptureQueriesContext(connections[PRIMARY]) as on_primary,
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
    ):
        response = Client().get("/v1/FetchHashes", {"startTimestamp": since}, headers=headers)

    assert response.status_code == 200
    # The withdrawn hashes are sent again because the ledger says this partner had them.
    statuses = [record["hashStatus"] for record in response.json()["hashRecords"]]
    assert statuses == ["Withdrawn"] * 8
    assert any('"registry_disclosure"' in q["sql"] for q in on_primary.captured_queries)
    assert not any('"registry_disclosure"' in q["sql"] for q in on_replica.captured_queries)

"""The registry on a primary and a real streaming replica: what may lag, lags; nothing is lost.

The test starts its own two PostgreSQL servers (tests/replication.py, ``primary_and_replica``): a
primary made by ``initdb``, and a hot standby made from it by ``pg_basebackup -R``, streaming on
another port. Nothing of the machine's own PostgreSQL is used or configured. The real web server
(``python -m registry.serve``) runs with ``DATABASE_URL`` naming the primary and
``DATABASE_REPLICA_URL`` the standby, and the test drives it over HTTP as a partner and as people
registering and withdrawing photos do, pausing the standby's replay (``pg_wal_replay_pause()``)
to hold it behind the primary for as long as it needs, or stopping it outright.

Why a separate web process rather than this one: the database aliases are read from the
environment when the settings load, and this process's connections belong to pytest-django's
test database. A process started with the two URLs runs the router, the index's load (in the
server's main process, before the fork) and its follower thread exactly as in production, and
the test observes only what a partner or an operator can: answers, ``/ready``'s figures, and the
standby's own ``pg_stat_activity``, which shows that the follower's polls reach the standby.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from registry.match_ids import match_id_encode
from tests.factories import case_creation_body, dihedral_payload, random_dihedral
from tests.processes import (
    READY_HEADERS,
    ROOT,
    PostgresCluster,
    free_port,
    migrate,
    processes_in,
    request,
    service_env,
    start_redis,
    start_web,
    wait_until,
)
from tests.replication import StreamingReplica, primary_and_replica

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# The brief's range for this suite's clusters, clear of the machine's own services.
CLUSTER_PORTS = (55400, 55499)
DATABASE = "rempart_replica"


@dataclass
class Replicated:
    """The service on a primary and its standby, with one partner (scopes match and sync)."""

    primary: PostgresCluster
    replica: StreamingReplica
    base: str
    key: str
    partner_id: int

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def on_primary(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.primary.url(DATABASE), autocommit=True) as connection:
            return connection.execute(statement, params).fetchall()

    def on_replica(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.replica.url(DATABASE), autocommit=True) as connection:
            return connection.execute(statement, params).fetchall()

    def register(self) -> tuple[dict[str, Any], list[str]]:
        """Open a case of one photo through the public API; its credentials and 8 hashes."""
        photo = dihedral_payload(random_dihedral())
        answer = request(self.base, "POST", "/api/v1/cases", case_creation_body([photo]))
        assert answer.status == 201, answer.body
        body = answer.json()
        hashes = photo["hashes"]
        assert isinstance(hashes, list)
        return body, hashes

    def withdraw(self, created: dict[str, Any]) -> None:
        credentials = {key: created[key] for key in ("case_reference", "case_secret")}
        answer = request(self.base, "POST", "/api/v1/cases/withdraw", credentials)
        assert answer.status == 200, answer.body

    def matched(self, hashes: list[str]) -> int:
        """How many of ``hashes`` match a registered photo now."""
        body = {"hashes": hashes, "purpose": "publish"}
        answer = request(self.base, "POST", "/api/v1/match", body, self.auth)
        assert answer.status == 200, answer.body
        return sum(1 for result in answer.json()["results"] if result["matches"])

    def ready(self) -> dict[str, Any]:
        figures: dict[str, Any] = request(self.base, "GET", "/ready", headers=READY_HEADERS).json()
        return figures

    def now_on_primary(self) -> dt.datetime:
        moment: dt.datetime = self.on_primary("SELECT clock_timestamp()")[0][0]
        return moment

    def wait_for_a_poll_of_the_replica_since(self, moment: dt.datetime) -> None:
        """Wait until the index's follower has read the change sequence on the standby, in a
        query that started after ``moment`` and has finished: it has seen what the standby
        holds at ``moment`` or later."""

        def polled() -> bool:
            rows = self.on_replica(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'idle' "
                "AND query LIKE %s AND query_start > %s",
                DATABASE,
                'SELECT "registry_change"."id" AS "id", "registry_change"."kind" AS "kind", '
                '"registry_change"."image_id" AS "image_id" FROM%',
                moment,
            )
            return bool(rows[0][0])

        def seen() -> str:
            sessions = self.on_replica(
                "SELECT state, query_start, left(query, 120) FROM pg_stat_activity "
                "WHERE datname = %s",
                DATABASE,
            )
            return f"no poll of the change sequence on the standby since {moment}: {sessions}"

        wait_until(polled, what=seen)


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    logs = tmp_path_factory.mktemp("replica")
    with primary_and_replica(*CLUSTER_PORTS) as (primary, replica), processes_in(logs) as started:
        primary.create_database(DATABASE)
        redis_port = free_port()
        start_redis(started, redis_port)
        env = service_env(
            DATABASE_URL=primary.url(DATABASE),
            DATABASE_REPLICA_URL=replica.url(DATABASE),
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            CELERY_BROKER_URL="",
            PUBLIC_CASE_RATE="100000/m",
            SYNC_REQUESTS_PER_MINUTE="100000",
        )
        migrate(env)
        created = subprocess.run(
            [sys.executable, "manage.py", "partner_create", "Platform A", "--scopes",
             "match,sync"],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        key = created.stdout.strip().splitlines()[-1]
        wait_until(replica.replayed, what="the standby to replay the schema and the partner")
        service = Replicated(primary, replica, start_web(started, env), key, partner_id=0)
        service.partner_id = service.on_primary("SELECT id FROM api_partner")[0][0]
        yield service


@pytest.fixture
def service(replicated: Replicated) -> Iterator[Replicated]:
    """The module's service, its standby replaying again at the end of each test, whatever
    happened in it."""
    yield replicated
    if not replicated.replica.running():
        replicated.replica.start()
    replicated.replica.resume()
    wait_until(replicated.replica.replayed, what="the standby to catch up after the test")


def test_a_registration_on_the_primary_becomes_matchable_through_the_index_following_the_replica(
    service: Replicated,
) -> None:
    service.replica.pause()
    _, photo = service.register()
    committed = service.now_on_primary()

    # The follower reads the standby, which has not replayed the registration: not yet indexed.
    service.wait_for_a_poll_of_the_replica_since(committed)
    assert service.matched(photo) == 0
    figures = service.ready()
    assert figures["changes_behind"] >= 1
    on_replica = service.on_replica("SELECT coalesce(max(id), 0) FROM registry_change")
    assert on_replica[0][0] == figures["applied_change"]

    service.replica.resume()

    wait_until(lambda: service.matched(photo) == 8, what="the new photo to match")
    wait_until(lambda: service.ready()["changes_behind"] == 0, what="the index to catch up")


def test_a_withdrawal_on_the_primary_never_matches_while_the_replica_still_holds_it(
    service: Replicated,
) -> None:
    created, photo = service.register()
    wait_until(lambda: service.matched(photo) == 8, what="the new photo to match")
    indexed = service.ready()["index_size"]
    service.replica.pause()

    service.withdraw(created)
    withdrawn = service.now_on_primary()

    # At once, before any follower could know: the candidates are confirmed on the primary.
    assert service.matched(photo) == 0
    service.wait_for_a_poll_of_the_replica_since(withdrawn)
    figures = service.ready()
    assert figures["index_size"] == indexed  # the index still holds the photo's hashes
    assert figures["changes_behind"] >= 1
    assert service.on_replica(
        "SELECT i.status FROM registry_registeredimage i JOIN registry_case c ON c.id = i.case_id "
        "WHERE c.reference = %s",
        created["case_reference"],
    ) == [("active",)]
    for _ in range(3):
        assert service.matched(photo) == 0

    service.replica.resume()

    wait_until(lambda: service.ready()["index_size"] == indexed - 8, what="the index to drop it")
    assert service.matched(photo) == 0


def test_the_sync_feed_read_from_the_replica_loses_nothing_across_a_pause_and_resume(
    service: Replicated,
) -> None:
    entries: list[dict[str, Any]] = []
    cursor = ""

    def page(limit: int = 2) -> bool:
        """Read one page of the feed; True if there is more."""
        nonlocal cursor
        answer = request(
            service.base, "GET", f"/api/v1/hashes/changes?limit={limit}&cursor={cursor}",
            headers=service.auth,
        )  # fmt: skip
        assert answer.status == 200, answer.body
        body = answer.json()
        entries.extend(body["entries"])
        cursor = body["next_cursor"]
        return bool(body["has_more"])

    def changes_on(read: Any) -> int:
        count: int = read("SELECT count(*) FROM registry_change")[0][0]
        return count

    # Before the pause: writes and pages interleaved.
    kept = [service.register()[0] for _ in range(2)]
    for _ in range(3):
        service.register()
        page()
    service.replica.pause()
    # While the standby is paused: more registrations and withdrawals on the primary.
    for number in range(4):
        created, _ = service.register()
        page()
        if number % 2:
            service.withdraw(created)
    service.withdraw(kept[0])
    while page():
        pass
    # The feed stops where the standby stands, short of the primary, with a cursor that
    # resumes from there.
    assert len(entries) == changes_on(service.on_replica)
    assert len(entries) < changes_on(service.on_primary)

    service.replica.resume()
    service.withdraw(kept[1])
    for _ in range(2):
        service.register()
        page()
    wait_until(service.replica.replayed, what="the standby to catch up")
    while page(limit=3):
        pass

    # Every change exactly once, in the sequence's order.
    sequence = service.on_primary("SELECT image_id, kind FROM registry_change ORDER BY id")
    expected = [
        match_id_encode(image_id=image_id, partner_id=service.partner_id)
        for image_id, _ in sequence
    ]
    assert [entry["id"] for entry in entries] == expected
    # A withdrawal's entry is a tombstone (an earlier addition's entry shows what was true when
    # its page was read).
    tombstones = [
        entry["kind"]
        for entry, (_, kind) in zip(entries, sequence, strict=True)
        if kind == "withdrawn"
    ]
    assert len(tombstones) >= 4  # this test's; earlier tests of the module may add theirs
    assert set(tombstones) == {"withdrawn"}
    times = [entry["changed_at"] for entry in entries]
    assert times == sorted(times)


def test_matching_and_withdrawals_go_on_while_the_replica_is_down(service: Replicated) -> None:
    created, photo = service.register()
    wait_until(lambda: service.matched(photo) == 8, what="the new photo to match")

    service.replica.stop()

    # The index is in memory and candidates are confirmed on the primary.
    assert service.matched(photo) == 8
    service.withdraw(created)
    assert service.matched(photo) == 0
    # The feeds read the replica: a clean 503 that says when to come back, not a stale page.
    feed = request(service.base, "GET", "/api/v1/hashes/changes", headers=service.auth)
    assert feed.status == 503
    assert "retry-after" in feed.headers
    assert service.ready()["changes_behind"] >= 1

    service.replica.start()

    # The follower outlives the outage and applies the withdrawal once the replica has it.
    wait_until(lambda: service.ready()["changes_behind"] == 0, what="the index to catch up")
    assert service.matched(photo) == 0
    feed = request(service.base, "GET", "/api/v1/hashes/changes", headers=service.auth)
    assert feed.status == 200


def test_the_stopncii_feed_read_from_the_replica_ends_with_the_primary_s_state(
    service: Replicated,
) -> None:
    held: dict[str, str] = {}  # hash -> status, as a StopNCII client keeps them
    headers = {"Ocp-Apim-Subscription-Key": service.key, "x-functions-key": "any"}

    def fetch_from(since: int) -> int:
        """One round of FetchHashes from ``since``, every page applied; the next round's start."""
        token = ""
        while True:
            query = f"startTimestamp={since}&pageSize=16" + (
                f"&nextPageToken={token}" * bool(token)
            )
            answer = request(service.base, "GET", f"/v1/FetchHashes?{query}", headers=headers)
            assert answer.status == 200, answer.body
            body = answer.json()
            held.update({r["hashValue"].lower(): r["hashStatus"] for r in body["hashRecords"]})
            if not body["hasMoreRecords"]:
                return int(body["nextSetTimestamp"])
            token = body["nextPageToken"]

    def statuses(photos: list[list[str]]) -> set[str | None]:
        return {held.get(value.lower()) for photo in photos for value in photo}

    before = [service.register() for _ in range(2)]
    wait_until(service.replica.replayed, what="the standby to replay the registrations")
    since = fetch_from(10)
    assert statuses([photo for _, photo in before]) == {"Active"}
    service.replica.pause()
    during = [service.register() for _ in range(2)]
    service.withdraw(before[0][0])
    since = fetch_from(since)
    # The standby has neither the new photos nor the withdrawal yet: nor has the client.
    assert statuses([photo for _, photo in during]) == {None}
    assert statuses([before[0][1]]) == {"Active"}

    service.replica.resume()
    service.withdraw(during[0][0])
    after = service.register()
    wait_until(service.replica.replayed, what="the standby to catch up")
    fetch_from(since)

    assert statuses([before[0][1]]) == {"Withdrawn"}
    assert statuses([before[1][1], during[1][1], after[1]]) == {"Active"}
    # Withdrawn before this client ever received it: its hashes are never sent, not even as
    # withdrawn (the disclosure ledger, read on the primary, says the client never had them).
    assert statuses([during[0][1]]) == {None}

"""The usage record of match calls, and their per-image match counts (registry.matching.counters),
written in batches off the request path."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from typing import NamedTuple

from django.db import close_old_connections, connections, router, transaction
from django.utils import timezone
from psycopg import sql

from registry.matching import counters
from registry.models import MatchCall

logger = logging.getLogger(__name__)


class Call(NamedTuple):
    """One match call's usage record, as it waits: a MatchCall is built only when written
    (building a model instance cost more than the rest of the record, on every call)."""

    partner_id: int
    key_id: int
    purpose: str
    hashes: int
    matched_hashes: int
    matches: int
    created_at: dt.datetime

    def row(self) -> MatchCall:
        return MatchCall(**self._asdict())


class MatchCallRecorder:
    """Writes this process's MatchCall rows, and the counts of the images its calls matched.

    Until ``start()``, each row (and each call's counts) is written at once. The web processes
    start it (post_fork in deploy/gunicorn.conf.py): rows then wait in memory and a thread
    writes them in one COPY every ``interval`` seconds, rather than an INSERT and a commit on
    every match call (about a sixth of a single-hash call's cost, measured with tests/load/). A
    row is a usage count, never a hash: a crash loses at most the last interval's rows, and
    ``stop()`` (at worker exit) writes what is left. Rows that could not be written (the
    database restarting) are kept for the next attempt, up to MAX_PENDING. The images' counts
    go to Redis from the same thread, in one round trip a round, where each call that matched
    waited on one of its own (a tenth of the load test's calls).
    """

    MAX_PENDING = 100_000

    def __init__(self) -> None:
        self._pending: list[Call] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def record(
        self,
        *,
        partner_id: int,
        key_id: int,
        purpose: str,
        hashes: int,
        matched_hashes: int,
        matches: int,
        matched_images: Sequence[int] = (),
    ) -> None:
        """Record a call; ``matched_images``: the image of each match (one per match)."""
        call = Call(partner_id, key_id, purpose, hashes, matched_hashes, matches, timezone.now())
        if self._thread is None:
            counters.image_matches_record(matched_images)
            call.row().save(force_insert=True)
            return
        counters.image_matches_defer(matched_images)
        with self._lock:
            self._pending.append(call)
            if len(self._pending) > self.MAX_PENDING:
                del self._pending[: len(self._pending) - self.MAX_PENDING]
                logger.warning("match call records dropped: the database is not answering")

    def flush(self) -> int:
        """Write the waiting counts and rows now; return how many rows were written."""
        counters.image_matches_flush()
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            _rows_write(rows)
        except Exception:
            with self._lock:
                self._pending[:0] = rows
            raise
        return len(rows)

    def start(self, *, interval: float = 0.5) -> None:
        """Write rows in batches from now on, from a thread of this process."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="match-calls", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Write what is left and go back to writing each row at once."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        try:
            self.flush()
        except Exception:
            logger.exception("match call records not written at exit")

    def _run(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.flush()
            except Exception:  # The next round retries; a database restart must not stop us.
                logger.exception("match call records not written; retrying")
            finally:
                close_old_connections()
        connections.close_all()  # This thread's own connections: it writes no more.


def _rows_write(rows: list[Call]) -> None:
    """Insert these rows, all or none (a failed flush is retried whole).

    On PostgreSQL with one COPY of the records as they wait: building a model instance for
    each, as bulk_create does, cost 38 to 66 us of the web process's CPU a row (a tenth of a
    single-hash call or more, in the thread that writes them), the COPY 4 to 5."""
    alias = router.db_for_write(MatchCall)
    connection = connections[alias]
    with transaction.atomic(using=alias):
        if connection.vendor != "postgresql":
            MatchCall.objects.using(alias).bulk_create([call.row() for call in rows])
            return
        meta = MatchCall._meta
        column = {field.attname: field.column for field in meta.concrete_fields}
        names: list[sql.Composable] = [sql.Identifier(column[name]) for name in Call._fields]
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(meta.db_table), sql.SQL(", ").join(names)
        )
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            for call in rows:
                copy.write_row(call)


match_call_recorder = MatchCallRecorder()

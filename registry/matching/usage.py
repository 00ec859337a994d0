"""The usage record of match calls, written in batches off the request path."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import NamedTuple

from django.db import close_old_connections, transaction
from django.utils import timezone

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
    """Writes this process's MatchCall rows.

    Until ``start()``, each row is written at once. The web processes start it (post_fork in
    deploy/gunicorn.conf.py): rows then wait in memory and a thread writes them in one INSERT
    every ``interval`` seconds, rather than an INSERT and a commit on every match call (about a
    sixth of a single-hash call's cost, measured with tests/load/). A row is a usage
    count, never a hash: a crash loses at most the last interval's rows, and ``stop()`` (at
    worker exit) writes what is left. Rows that could not be written (the database restarting)
    are kept for the next attempt, up to MAX_PENDING.
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
    ) -> None:
        call = Call(partner_id, key_id, purpose, hashes, matched_hashes, matches, timezone.now())
        if self._thread is None:
            call.row().save(force_insert=True)
            return
        with self._lock:
            self._pending.append(call)
            if len(self._pending) > self.MAX_PENDING:
                del self._pending[: len(self._pending) - self.MAX_PENDING]
                logger.warning("match call records dropped: the database is not answering")

    def flush(self) -> int:
        """Write the waiting rows now; return how many were written."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            with transaction.atomic():  # All or none: a failed flush is retried whole.
                MatchCall.objects.bulk_create([call.row() for call in rows])
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


match_call_recorder = MatchCallRecorder()

"""The change sequence: appending additions and removals, and announcing them once committed."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import connection, transaction
from django.utils import timezone

from registry.celery import app as celery_app
from registry.models import Change

# Any constant will do: it names the lock that orders appends to the change sequence.
logger = logging.getLogger(__name__)

_CHANGE_SEQUENCE_LOCK = 0x52454D50  # "REMP"


def changes_append(*, image_ids: Sequence[int], kind: str) -> None:
    """Append one change per image, in a single statement, after taking the sequence lock.

    Holding a transaction-level lock from the append until commit means sequence numbers become
    visible in the order they were allocated: a reader never sees N+1 before N. Callers append
    last, so the lock is held only for the end of their transaction.
    """
    if not image_ids:
        return
    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHANGE_SEQUENCE_LOCK])
            # The database's clock, read under the lock: change times never decrease in sequence
            # order, whatever the web servers' clocks say (the StopNCII feed pages by time).
            cursor.execute("SELECT clock_timestamp()")
            row = cursor.fetchone()
            now = row[0]
    Change.objects.bulk_create(
        [Change(kind=kind, image_id=image_id, created_at=now) for image_id in image_ids]
    )
    transaction.on_commit(_changes_announce)


# Committed changes become webhooks (registry.tasks). The task is named rather than imported:
# the tasks wrap services, so importing them here would make services import themselves.
CHANGES_COMMITTED_TASK = "registry.tasks.webhook_deliveries_dispatch_task"


def _changes_announce() -> None:
    """Ask the workers to notify partners of the changes just committed; never raises.

    The person's registration or withdrawal has already committed: a broker that cannot be
    reached must not turn it into an error. One attempt, no publish retries; the periodic sweep
    (CELERY_BEAT_SCHEDULE) delivers whatever this could not enqueue.
    """
    try:
        if celery_app.conf.task_always_eager:  # No broker (development): run it here, now.
            celery_app.signature(CHANGES_COMMITTED_TASK).apply_async()
            return
        # Its own connection, tried once: the shared pool would retry for seconds on end.
        with celery_app.connection_for_write(
            connect_timeout=2, transport_options={"max_retries": 0}
        ) as broker:
            celery_app.signature(CHANGES_COMMITTED_TASK).apply_async(retry=False, connection=broker)
    except Exception:  # any broker failure: the sweep catches up
        logger.warning("could not enqueue the webhook dispatcher; the sweep will", exc_info=True)

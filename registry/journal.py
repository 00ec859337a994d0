"""The withdrawal journal: every withdrawal, also written to a file kept apart from the database.

A database restored from a backup has forgotten the withdrawals made since that backup: its
photos would match again and be sent to partners again. The journal prevents that. Each
withdrawal appends one JSON line, fsynced before the withdrawal's transaction commits::

    {"case": "RMP-...", "images": [12, 13], "withdrawn_at": "2026-11-24T21:50:00.123456+00:00"}

The line holds the case reference, the ids of the images withdrawn and the time: never a hash,
a secret or an address. After a restore, ``manage.py withdrawals_replay JOURNAL`` withdraws
again, through the withdrawal service, every case the journal names that the database still
holds as active (``deploy/restore.sh`` runs it).

The line is written before the commit, so a journal may name a withdrawal whose transaction then
failed: replaying it withdraws a case its owner asked to withdraw, which is the safe side. A
journal that cannot be written makes the withdrawal fail (the person may try again) rather than
commit a withdrawal that a restore could undo: it raises WithdrawalJournalError, which
the API and the pages answer as they answer an unreachable database, 503 with Retry-After.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import OperationalError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One withdrawal as the journal recorded it."""

    case_reference: str
    image_ids: tuple[int, ...]
    withdrawn_at: dt.datetime
    line: int


class JournalError(Exception):
    """A journal line that cannot be read: its number and why."""


class WithdrawalJournalError(OperationalError):
    """The journal could not be written, so the withdrawal's transaction is rolled back.

    An OperationalError, like an unreachable database, because it means the same to the person:
    nothing changed, retry in a moment (503 with Retry-After, never a 500).
    """


def journal_path() -> Path | None:
    """The configured journal file, or None when no journal is kept (development)."""
    configured: str = settings.WITHDRAWAL_JOURNAL
    return Path(configured) if configured else None


def withdrawal_journal_append(
    *, case_reference: str, image_ids: Sequence[int], withdrawn_at: dt.datetime
) -> None:
    """Append one withdrawal to the journal and fsync it; does nothing when none is configured.

    Raises WithdrawalJournalError when the file cannot be written: the caller's
    transaction then fails.
    """
    path = journal_path()
    if path is None:
        return
    line = json.dumps(
        {
            "case": case_reference,
            "images": list(image_ids),
            "withdrawn_at": withdrawn_at.isoformat(),
        },
        separators=(",", ":"),
    )
    try:
        # O_APPEND: concurrent writers (several web processes) each append whole lines.
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, (line + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        logger.error("the withdrawal journal cannot be written: %s", error.strerror)
        raise WithdrawalJournalError(
            "The withdrawal journal cannot be written; the withdrawal was not made."
        ) from error


def journal_read(path: Path) -> Iterator[JournalEntry]:
    """The journal's entries in order. Raises JournalError on a malformed line.

    A last line cut short (a crash in the middle of a write) is skipped: its withdrawal never
    committed, since the write comes before the commit and a failed write fails it.
    """
    with path.open("rb") as journal:
        raw_lines = journal.read().split(b"\n")
    last = len(raw_lines)
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            entry = JournalEntry(
                case_reference=str(record["case"]),
                image_ids=tuple(int(image) for image in record["images"]),
                withdrawn_at=dt.datetime.fromisoformat(record["withdrawn_at"]),
                line=number,
            )
        except (ValueError, KeyError, TypeError) as error:
            if number == last:  # No newline after it: an interrupted write.
                return
            raise JournalError(f"line {number}: {error}") from error
        yield entry

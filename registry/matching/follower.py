"""The process's matcher: the in-memory index of matchable hashes, kept fresh from PostgreSQL.

PostgreSQL is the source of truth. Each web process loads every matchable hash into a
:class:`registry.matching.HashIndex` at start (streamed with a binary COPY, never one Python
object per row), or maps the checkpoint of a built index written by ``manage.py
index_checkpoint`` (``INDEX_CHECKPOINT_PATH``, registry.matching.checkpoint), applies the
changes made since, then a follower thread applies the change sequence every
``INDEX_POLL_MS`` (250 ms by default), so a newly registered hash is matchable in every
process well within a second.

A withdrawal must not wait for that: the index only proposes candidates, and
``registry.selectors.hash_match`` keeps those whose image is still matchable in the database,
in one indexed query, before answering. Once ``case_withdraw`` has committed, no process
returns its hashes, whether or not its follower has caught up. A query with no candidate (by
far the common case) costs no database work at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import close_old_connections, connections, router
from django.db.models import Max

from registry.dbrouting import replica_reads
from registry.matching.checkpoint import (
    change_anchor,
    checkpoint_load,
    checkpoint_write,
    database_fingerprint,
)
from registry.matching.index import HashIndex, Matches, merge_kernels_load
from registry.models import Change, ImageHash, RegisteredImage
from registry.pdq import HASH_BYTES, MATCH_DISTANCE

logger = logging.getLogger(__name__)

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
# One row of the binary COPY of (bigint id, bytea value): field count, then length and bytes of
# each field, all big-endian.
_COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("id_length", ">i4"),
        ("id", ">i8"),
        ("value_length", ">i4"),
        ("value", f"V{HASH_BYTES}"),
    ]
)
# The SQL of ImageHash.objects.matchable(), written out for COPY (statuses are our constants).
_MATCHABLE_SQL = (
    "SELECT h.id, h.value FROM registry_imagehash h "  # noqa: S608 - constants only
    "JOIN registry_registeredimage i ON i.id = h.image_id "
    f"WHERE i.status IN ({', '.join(repr(str(status)) for status in RegisteredImage.MATCHABLE)})"
)


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """What the readiness endpoint reports."""

    ready: bool
    size: int
    nbytes: int
    applied_change: int
    loaded_at: float | None


def _parse_binary_copy(data: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Parse a binary COPY of (bigint, bytea(32)) rows into ids and an (n, 32) hash array."""
    if not data.startswith(_COPY_SIGNATURE):
        raise ValueError("not a PostgreSQL binary COPY stream")
    extension = int.from_bytes(data[15:19], "big")
    start = 19 + extension
    end = len(data) - 2  # The trailer is a field count of -1.
    if data[end:] != b"\xff\xff" or (end - start) % _COPY_ROW.itemsize:
        raise ValueError("unexpected rows in the binary COPY stream")
    rows = np.frombuffer(
        data, dtype=_COPY_ROW, offset=start, count=(end - start) // _COPY_ROW.itemsize
    )
    if rows.size and not (
        (rows["fields"] == 2).all()
        and (rows["id_length"] == 8).all()
        and (rows["value_length"] == HASH_BYTES).all()
    ):
        raise ValueError("unexpected field sizes in the binary COPY stream")
    ids = rows["id"].astype(np.int64)
    hashes = np.frombuffer(rows["value"].tobytes(), dtype=np.uint8).reshape(-1, HASH_BYTES)
    return ids, hashes


def load_matchable() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Read the id and value of every matchable hash, streamed from the database (the replica,
    inside ``replica_reads()``, when one is configured)."""
    connection = connections[router.db_for_read(ImageHash)]
    if connection.vendor == "postgresql":
        buffer = bytearray()
        statement = f"COPY ({_MATCHABLE_SQL}) TO STDOUT (FORMAT BINARY)"
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            for chunk in copy:
                buffer += chunk
        return _parse_binary_copy(bytes(buffer))
    rows = list(ImageHash.objects.matchable().values_list("id", "value"))
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    hashes = np.frombuffer(b"".join(bytes(row[1]) for row in rows), dtype=np.uint8)
    return ids, hashes.reshape(-1, HASH_BYTES)


def _sequence_head() -> int:
    return Change.objects.aggregate(head=Max("id"))["head"] or 0


def _changes_apply(index: HashIndex, *, after: int, limit: int = 10_000) -> tuple[int, int]:
    """Apply to ``index`` the changes after number ``after``, at most ``limit`` of them;
    return (the last change applied, how many)."""
    changes = list(
        Change.objects.filter(id__gt=after)
        .order_by("id")
        .values_list("id", "kind", "image_id")[:limit]
    )
    if not changes:
        return after, 0
    # An image's last change is its state: a reviewer may suspend an image and reinstate it.
    last_kind = {image: kind for _, kind, image in changes}
    added = {image for image, kind in last_kind.items() if kind == Change.Kind.ADDED}
    withdrawn = set(last_kind) - added
    if added:
        rows = list(ImageHash.objects.filter(image_id__in=added).values_list("id", "value"))
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        values = b"".join(bytes(row[1]) for row in rows)
        index.add(ids, np.frombuffer(values, dtype=np.uint8).reshape(-1, HASH_BYTES))
    if withdrawn:
        gone = list(ImageHash.objects.filter(image_id__in=withdrawn).values_list("id", flat=True))
        index.remove(np.asarray(gone, dtype=np.int64))
    return changes[-1][0], len(changes)


@dataclass(frozen=True, slots=True)
class CheckpointWritten:
    """What ``index_checkpoint_write`` wrote."""

    path: str
    hashes: int
    position: int
    size: int
    seconds: float


@replica_reads()
def index_checkpoint_write(path: str) -> CheckpointWritten:
    """Build the index from every matchable hash in the database and write it as the
    checkpoint at ``path`` (registry.matching.checkpoint), replacing the file atomically.

    Reads as ``Matcher.load`` does (the replica, when one is configured) and needs as much
    memory again as the index while it runs. Raises OSError if the file cannot be written.
    """
    started = time.monotonic()
    head = _sequence_head()
    ids, hashes = load_matchable()
    segment = HashIndex.build(ids, hashes).main_segment()
    del ids, hashes
    size = checkpoint_write(
        path,
        segment,
        position=head,
        anchor=change_anchor(head),
        database=database_fingerprint(),
    )
    seconds = time.monotonic() - started
    logger.info(
        "match index checkpoint written: %d hashes at change %d, %d bytes in %.1f s",
        len(segment),
        head,
        size,
        seconds,
    )
    return CheckpointWritten(path, len(segment), head, size, seconds)


class Matcher:
    """One process's index and the state of its catch-up with the change sequence."""

    def __init__(self) -> None:
        self._index = HashIndex()
        self._applied_change = 0
        self._loaded_at: float | None = None
        self._ready = threading.Event()
        self._write_lock = threading.Lock()
        self._follower: threading.Thread | None = None
        self._stopping = threading.Event()
        self._pid = os.getpid()

    # --- Loading and following -----------------------------------------------------------
    # Both read from a replica when one is configured: a lagging index adds a new photo a little
    # later, and never undoes a withdrawal, since hash_match confirms candidates on the primary.
    @replica_reads()
    def load(self) -> None:
        """(Re)build the index, then apply the changes made since, before answering anything.

        From the checkpoint at INDEX_CHECKPOINT_PATH when one is set and this database can
        follow on from it (registry.matching.checkpoint), mapped read-only; otherwise, with a
        warning saying why, from every matchable hash in the database.
        """
        started = time.monotonic()
        path = settings.INDEX_CHECKPOINT_PATH
        checkpoint = checkpoint_load(path) if path else None
        if checkpoint is not None:
            index, head = HashIndex.of_segment(checkpoint.segment), checkpoint.position
        else:
            # Read the head of the sequence first: every change up to it has committed (changes
            # commit in sequence order), so the hashes read next reflect at least all of them,
            # and replaying later changes is harmless (adds replace, removes of absent ids are
            # no-ops).
            head = _sequence_head()
            ids, hashes = load_matchable()
            index = HashIndex.build(ids, hashes)
        # The changes since, before the index is published: a photo withdrawn after the
        # checkpoint is out of it, and one registered since is in it, from the first answer.
        applied = 0
        while True:
            head, count = _changes_apply(index, after=head)
            if not count:
                break
            applied += count
        # Answer one query before serving: the compiled search is loaded now (numba), not by the
        # first partner calls, and by a server before its workers fork (one query keeps to this
        # thread: no pool is started before a fork). A query as search() makes it, read-only
        # (np.frombuffer): numba compiles a read-only array's signature apart, which had each
        # worker's first call load it (about 55 ms).
        query = _queries_array([bytes(HASH_BYTES)])
        index.search(query, max_distance=MATCH_DISTANCE)
        # ... and the passes of a merge and of the segment it builds, writable where a
        # checkpoint's is read-only (registry.matching.index.merge_kernels_load).
        merge_kernels_load(query)
        with self._write_lock:
            self._index = index
            self._applied_change = head
            self._loaded_at = time.time()
        self._ready.set()
        logger.info(
            "match index loaded from the %s: %d hashes, %d changes applied since, in %.1f s",
            "checkpoint" if checkpoint is not None else "database",
            len(index),
            applied,
            time.monotonic() - started,
        )

    @replica_reads()
    def catch_up(self, *, limit: int = 10_000) -> int:
        """Apply the changes committed since the last one applied; return how many."""
        with self._write_lock:
            self._applied_change, count = _changes_apply(
                self._index, after=self._applied_change, limit=limit
            )
        return count

    def start(self) -> None:
        """Load in the background and follow the change sequence, once per process."""
        if self._follower is not None and self._pid == os.getpid():
            return
        self._pid = os.getpid()  # After a fork the parent's thread is gone: start our own.
        self._stopping.clear()
        self._follower = threading.Thread(target=self._follow, name="match-index", daemon=True)
        self._follower.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._follower is not None:
            self._follower.join(timeout=5)
        self._follower = None

    def _follow(self) -> None:
        interval = settings.INDEX_POLL_MS / 1000
        while not self._stopping.is_set():
            try:
                if not self._ready.is_set():
                    self.load()
                while self.catch_up():
                    pass
            except Exception:  # The follower must outlive a database restart.
                logger.exception("match index follower failed; retrying")
                connections.close_all()
                self._stopping.wait(min(5.0, interval * 8))
                continue
            finally:
                close_old_connections()
            self._stopping.wait(interval)
        connections.close_all()

    # --- Answering -----------------------------------------------------------------------
    def status(self) -> IndexStatus:
        index = self._index
        return IndexStatus(
            ready=self._ready.is_set(),
            size=len(index),
            nbytes=index.nbytes,
            applied_change=self._applied_change,
            loaded_at=self._loaded_at,
        )

    def search(self, queries: Sequence[bytes], *, max_distance: int) -> list[Matches]:
        """For each query, the ids and distances of the indexed hashes within ``max_distance``.

        These are candidates: the caller confirms them against the database (see
        registry.selectors.hash_match), which is what makes a withdrawal immediate.
        """
        if not queries:
            return []
        return self._index.search(_queries_array(queries), max_distance=max_distance)


def _queries_array(queries: Sequence[bytes]) -> npt.NDArray[np.uint8]:
    """The queries as the index takes them: (n, 32), read-only, without a copy."""
    return np.frombuffer(b"".join(queries), dtype=np.uint8).reshape(-1, HASH_BYTES)


_matcher: Matcher | None = None
_matcher_lock = threading.Lock()


def get_matcher() -> Matcher:
    """This process's matcher, created on first use; a forked child inherits its index."""
    global _matcher  # one matcher per process, by design
    with _matcher_lock:
        if _matcher is None:
            _matcher = Matcher()
        return _matcher

"""Probing detection: a key whose queries look like a search for registered hashes.

Someone holding a key could try to learn what the registry holds by querying many small edits of
a hash and watching which match, or by replaying hashes they expect to match. Two signs are
watched, per key, in each web process's memory:

- clustered queries: the process keeps the key's last PROBING_RECENT_QUERIES query hashes in a
  ring buffer. Every query of every call (no sample: decoys cannot hide a probe among them)
  counts the recent ones, and the call's earlier ones, 1 to PROBING_CLOSE_BITS bits away (0 bits
  is the same image asked again, which is not probing); the alert opens when the counts of the
  queries in the buffer, and of the call's queries that did not fit in it, add up to
  PROBING_CLOSE_PAIRS. Unrelated photos are about 128 bits apart, so legitimate traffic seldom
  has such pairs;
- an abnormal hit rate: PROBING_HIT_RATE_PERCENT % or more of the key's queries matched, over
  PROBING_WINDOW_SECONDS and at least PROBING_MIN_QUERIES queries (a platform's uploads rarely
  match at all);
- one image matched by many different queries: PROBING_IMAGE_MATCHES distinct query hashes of
  the key matched the same registered image within PROBING_WINDOW_SECONDS. Whoever rebuilds a
  registered hash from a near copy asks questions whose "yes" answers are matches of that one
  image, wherever its queries lie; a platform checking its uploads sees an image matched by a
  few re-encodings at most. (Recorded with the clustered-queries reason: the queries cluster
  around that image.)

A match-only key may not lower ``max_distance`` (api.views.MatchApi), so each answer says only
"within 31 bits or not"; docs/threat-model.md measures what such answers still reveal, and how
soon these signs stop it (tests/hostile/test_hash_oracle.py).

The call that opens an alert gets no result (api.views.MatchApi answers 429): what it asked is
never answered.

The query hashes live only in this process's memory, never in Redis or the database, and are
forgotten as the buffer turns. An alert is a ProbingAlert row (counts only) and an audit event;
the key's ``slowed_since`` is set, so that its match budget is divided by
PROBING_SLOWDOWN_FACTOR (api.throttling) until a reviewer or a superuser clears the alert in
the admin. Each process sees the calls it served: with several workers, each watches its share.

The hook compares each query of a call with the fixed-size buffer and with the call's other
queries (O(batch x (buffer + batch)) word operations: a few milliseconds for 1,000 hashes), and
counts the batch's matches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from numba import njit

from registry import roles
from registry.exceptions import InvalidInput
from registry.matching.kernels import _popcount
from registry.models import AuditEvent, PartnerKey, ProbingAlert
from registry.pdq import HASH_BYTES
from registry.services.audit import audit_event_record

_WORDS = HASH_BYTES // 8


@dataclass
class _KeyState:
    """What one process remembers of one key's recent queries."""

    capacity: int
    recent: npt.NDArray[np.uint64] = field(init=False)  # (4, capacity): word by word
    close_counts: npt.NDArray[np.int64] = field(init=False)
    size: int = 0
    position: int = 0
    close_pairs: int = 0
    window_start: float = 0.0
    queries: int = 0
    matched: int = 0
    # Per registered image, the distinct queries that matched it (at most the limit's worth).
    image_queries: dict[int, set[bytes]] = field(default_factory=dict)
    alerted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.recent = np.zeros((_WORDS, self.capacity), dtype=np.uint64)
        self.close_counts = np.zeros(self.capacity, dtype=np.int64)
        self.recent_uploads = np.full(self.capacity, -1, dtype=np.int64)
        self.next_upload = 0
        self.size = self.position = self.close_pairs = 0
        self.window_start = time.monotonic()
        self.queries = self.matched = 0
        self.image_queries = {}
        self.alerted = False

    def push(
        self,
        words: npt.NDArray[np.uint64],
        close_bits: int,
        uploads: npt.NDArray[np.int64] | None = None,
    ) -> int:
        """Add a call's queries; count, for each upload, the other recent uploads it is close to.

        ``uploads[i]`` is query i's upload (its own hash and its derived views); by default each
        query is an upload of its own. Two uploads are close when any of their hashes lie
        1..close_bits bits apart: an upload's views are close to each other by construction, and
        a repost checked twice counts once, not once per view. One compiled pass for the whole
        call: each query against the buffer as it was, and against the call's earlier queries.
        The buffer keeps the last ``capacity`` queries; returns the close pairs counted by those
        that did not fit, for this call's decision.
        """
        count_in = words.shape[0]
        if count_in == 1 and (uploads is None or uploads.shape[0] == 1):
            # One hash, the common call: one compiled pass compares, counts and stores it.
            self.close_pairs += _push_one(
                words[0].astype(np.uint64, copy=False),
                self.next_upload,
                self.recent,
                self.close_counts,
                self.recent_uploads,
                self.size,
                self.position,
                close_bits,
            )
            self.next_upload += 1
            self.position = (self.position + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)
            return 0
        if uploads is None:
            uploads = np.arange(count_in, dtype=np.int64)
        ids = self.next_upload + uploads.astype(np.int64)
        self.next_upload = int(ids.max()) + 1
        rows_b, cols_b, rows_w, cols_w = _close_pairs(
            np.ascontiguousarray(words), ids, self.recent, self.size, close_bits
        )
        words = np.ascontiguousarray(words.T)  # (4, n)
        every = np.zeros(count_in, dtype=np.int64)
        if len(rows_b) or len(rows_w):
            every = self._close_counts(ids, rows_b, cols_b, rows_w, cols_w)
        count = min(count_in, self.capacity)
        dropped = int(every[:-count].sum()) if count < count_in else 0
        words, close = words[:, -count:], every[-count:]
        if count == 1:  # A single hash: plain indexing, without building index arrays.
            slot = self.position
            self.close_pairs += int(close[0]) - int(self.close_counts[slot])
            self.recent[:, slot] = words[:, 0]
            self.close_counts[slot] = close[0]
            self.recent_uploads[slot] = ids[-1]
            self.position = (slot + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)
            return dropped
        slots = (self.position + np.arange(count)) % self.capacity
        self.close_pairs += int(close.sum()) - int(self.close_counts[slots].sum())
        self.recent[:, slots] = words
        self.close_counts[slots] = close
        self.recent_uploads[slots] = ids[-count:]
        self.position = int((self.position + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)
        return dropped

    def _close_counts(
        self,
        ids: npt.NDArray[np.int64],
        rows_b: npt.NDArray[np.int64],
        cols_b: npt.NDArray[np.int64],
        rows_w: npt.NDArray[np.int64],
        cols_w: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.int64]:
        """Per query, the distinct other uploads its upload is close to (on its first query)."""
        count_in = len(ids)
        pairs = np.unique(
            np.stack(
                [
                    np.concatenate([ids[rows_b], ids[rows_w]]),
                    np.concatenate([self.recent_uploads[cols_b], ids[cols_w]]),
                ]
            ),
            axis=1,
        )
        # Each upload's count sits on its first query, so the buffer can forget it with it.
        every = np.zeros(count_in, dtype=np.int64)
        _, first = np.unique(ids, return_index=True)
        per_upload = np.bincount(pairs[0] - ids.min(), minlength=int(ids.max() - ids.min()) + 1)
        every[first] = per_upload[ids[first] - ids.min()]
        return every

    def count_image_matches(
        self, hashes: Sequence[bytes], results: Sequence[Sequence[Any]], limit: int
    ) -> int:
        """Record which image each query matched; the most distinct queries on one image."""
        most = 0
        for value, matches in zip(hashes, results, strict=True):
            for match in matches:
                seen = self.image_queries.setdefault(match.image_id, set())
                if len(seen) < limit:  # Enough to decide: memory stays bounded.
                    # The whole hash: queries that differ only past their first bytes are
                    # distinct questions, and a probe's edits can lie anywhere.
                    seen.add(value)
                most = max(most, len(seen))
        return most


@njit(cache=True, nogil=True)
def _close_pairs(
    words: npt.NDArray[np.uint64],
    ids: npt.NDArray[np.int64],
    recent: npt.NDArray[np.uint64],
    size: int,
    close_bits: int,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """The close pairs (1 to ``close_bits`` bits apart) of a call's queries ``words`` (n, 4):
    with the buffer's first ``size`` columns (query row, buffer column), and with the call's
    earlier queries of another upload (later row, earlier row). Compiled: a single hash
    against the buffer is a few hundred popcounts, which numpy's dispatch made ten times dearer.
    """
    n = words.shape[0]
    rows_b = []
    cols_b = []
    rows_w = []
    cols_w = []
    for i in range(n):
        for column in range(size):
            distance = 0
            for word in range(4):
                distance += _popcount(words[i, word] ^ recent[word, column])
            if 1 <= distance <= close_bits:
                rows_b.append(i)
                cols_b.append(column)
        for j in range(i):
            if ids[i] == ids[j]:
                continue
            distance = 0
            for word in range(4):
                distance += _popcount(words[i, word] ^ words[j, word])
            if 1 <= distance <= close_bits:
                rows_w.append(i)
                cols_w.append(j)
    return (
        np.array(rows_b, dtype=np.int64),
        np.array(cols_b, dtype=np.int64),
        np.array(rows_w, dtype=np.int64),
        np.array(cols_w, dtype=np.int64),
    )


@njit(cache=True, nogil=True)
def _push_one(
    query: npt.NDArray[np.uint64],
    upload: int,
    recent: npt.NDArray[np.uint64],
    close_counts: npt.NDArray[np.int64],
    recent_uploads: npt.NDArray[np.int64],
    size: int,
    slot: int,
    close_bits: int,
) -> int:
    """``_KeyState.push`` of a call of one hash (``query``, 4 words) of upload ``upload``: count
    the distinct uploads of the buffer's first ``size`` columns it is close to, store it in
    column ``slot`` with that count, and return how much the key's close pairs change."""
    close = np.empty(size, np.int64)
    found = 0
    for column in range(size):
        distance = 0
        for word in range(4):
            distance += _popcount(query[word] ^ recent[word, column])
        if 1 <= distance <= close_bits:
            close[found] = recent_uploads[column]
            found += 1
    distinct = 0
    if found:
        ordered = np.sort(close[:found])
        distinct = 1
        for i in range(1, found):
            if ordered[i] != ordered[i - 1]:
                distinct += 1
    change = distinct - close_counts[slot]
    for word in range(4):
        recent[word, slot] = query[word]
    close_counts[slot] = distinct
    recent_uploads[slot] = upload
    return int(change)


_states: dict[int, _KeyState] = {}
_states_lock = threading.Lock()


def _state(key_id: int) -> _KeyState:
    with _states_lock:
        state = _states.get(key_id)
        if state is None or state.capacity != settings.PROBING_RECENT_QUERIES:
            state = _states[key_id] = _KeyState(capacity=settings.PROBING_RECENT_QUERIES)
        return state


def forget_all() -> None:
    """Drop every key's remembered queries in this process (tests, and a key's revocation)."""
    with _states_lock:
        _states.clear()


def _words(hashes: Sequence[bytes]) -> npt.NDArray[np.uint64]:
    return np.frombuffer(b"".join(hashes), dtype=np.uint64).reshape(-1, _WORDS)


def kernels_load() -> None:
    """Load the watch's compiled passes (numba) for the arrays match calls give them (read-only,
    from the request's bytes): a server does it before its workers fork (registry.serve), so
    that no worker's first call waits for them (16 ms a worker with numba's cache on disk, a
    few seconds without)."""
    state = _KeyState(capacity=4)
    state.push(_words([bytes(HASH_BYTES)]), settings.PROBING_CLOSE_BITS, np.array([0]))
    state.push(_words([bytes(HASH_BYTES)] * 2), settings.PROBING_CLOSE_BITS, np.array([0, 1]))


def match_observe(
    *,
    key: PartnerKey,
    hashes: Sequence[bytes],
    results: Sequence[Sequence[Any]],
    views: Sequence[Mapping[str, bytes]] | None = None,
) -> ProbingAlert | None:
    """Watch one match call of ``key``: its query hashes, every derived view's too (``views[i]``
    of upload i), and, per upload, what matched.

    Returns the alert opened by this call, if it opened one. A key already slowed down is not
    watched; once its alerts are cleared, this process watches it afresh.
    """
    state = _state(key.pk)
    if key.slowed_since is not None:
        state.alerted = True
        return None
    with state.lock:
        if state.alerted:  # Cleared since this process last saw it: start from nothing.
            state.reset()
        now = time.monotonic()
        if now - state.window_start > settings.PROBING_WINDOW_SECONDS:
            state.window_start, state.queries, state.matched = now, 0, 0
            state.image_queries = {}
        every = list(hashes)
        uploads = list(range(len(hashes)))
        for upload, upload_views in enumerate(views or ()):
            every.extend(upload_views.values())
            uploads.extend([upload] * len(upload_views))
        state.queries += len(hashes)
        state.matched += sum(1 for found in results if found)
        dropped = (
            state.push(_words(every), settings.PROBING_CLOSE_BITS, np.array(uploads))
            if every
            else 0
        )
        limit = settings.PROBING_IMAGE_MATCHES
        most_on_one_image = state.count_image_matches(hashes, results, limit)
        reason: str | None = None
        if (
            state.close_pairs + dropped >= settings.PROBING_CLOSE_PAIRS
            or most_on_one_image >= limit
        ):
            reason = ProbingAlert.Reason.CLUSTERED_QUERIES
        elif (
            state.queries >= settings.PROBING_MIN_QUERIES
            and state.matched * 100 >= settings.PROBING_HIT_RATE_PERCENT * state.queries
        ):
            reason = ProbingAlert.Reason.HIGH_HIT_RATE
        if reason is None:
            return None
        counts = (state.queries, state.matched, state.close_pairs + dropped)
        state.alerted = True
    return probing_alert_open(
        key=key, reason=reason, queries=counts[0], matched_queries=counts[1], close_pairs=counts[2]
    )


def probing_alert_open(
    *, key: PartnerKey, reason: str, queries: int, matched_queries: int, close_pairs: int
) -> ProbingAlert | None:
    """Open an alert on ``key`` and slow it down; None if another process just did.

    One conditional update marks the key slowed, so that two processes seeing the same key
    open one alert. Appends a ``probing.alert_opened`` audit event (counts only).
    """
    now = timezone.now()
    with transaction.atomic():
        marked = PartnerKey.objects.filter(pk=key.pk, slowed_since__isnull=True).update(
            slowed_since=now
        )
        if not marked:
            return None
        alert = ProbingAlert.objects.create(
            key=key,
            partner_id=key.partner_id,
            reason=reason,
            queries=queries,
            matched_queries=matched_queries,
            close_pairs=close_pairs,
            opened_at=now,
        )
        audit_event_record(
            action=AuditEvent.Action.PROBING_ALERT_OPENED,
            actor="system",
            subject=f"key:{key.lookup_id}",
            details={
                "alert": alert.pk,
                "partner": key.partner_id,
                "reason": reason,
                "queries": queries,
                "matched_queries": matched_queries,
                "close_pairs": close_pairs,
            },
        )
    key.slowed_since = now
    return alert


def probing_alert_clear(*, alert: ProbingAlert, user: Any) -> bool:
    """Clear ``alert`` as ``user`` (a reviewer or a superuser); True if it was open.

    When the key has no other open alert its slowdown ends at once. Appends a
    ``probing.alert_cleared`` audit event. Raises InvalidInput (``review_not_allowed``) for
    anyone else.
    """
    if not roles.is_reviewer(user):
        raise InvalidInput("review_not_allowed", "Only a reviewer may clear a probing alert.")
    now = timezone.now()
    with transaction.atomic():
        key = PartnerKey.objects.select_for_update().get(pk=alert.key_id)
        cleared = ProbingAlert.objects.filter(pk=alert.pk, cleared_at__isnull=True).update(
            cleared_at=now, cleared_by=user
        )
        if not cleared:
            return False
        still_open = ProbingAlert.objects.filter(key=key, cleared_at__isnull=True).exists()
        if not still_open:
            key.slowed_since = None
            key.save(update_fields=["slowed_since"])
        audit_event_record(
            action=AuditEvent.Action.PROBING_ALERT_CLEARED,
            actor=f"staff:{user.pk}",
            subject=f"key:{key.lookup_id}",
            details={"alert": alert.pk, "partner": key.partner_id, "slowed": still_open},
        )
    alert.refresh_from_db()
    return True


def slowed_key_id(key: PartnerKey) -> int | None:
    """The key's id if it is slowed down by an open alert (for api.throttling), else None."""
    return key.pk if key.slowed_since is not None else None

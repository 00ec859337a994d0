"""Match counts per image and per hour, in Redis: the evidence of the review's spike rule.

Each image's matches are counted per hour (a Redis hash per hour, image id to count: never a
hash value), expiring after the 24-hour window. Without Redis (development only), each process
keeps its own counts and forgets hours past the window.

A web process whose match call recorder runs (registry.matching.usage) defers its counts: a
match call adds them in memory (``image_matches_defer``) and the recorder's thread writes them
with its rows, in one round trip for every image counted meanwhile (``image_matches_flush``),
rather than one on each call that matched. A read in the same process writes its own waiting
counts first, so it sees them; other processes see them within the recorder's interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

_HOUR = 3600


_WINDOW_HOURS = 24


_KEY_PREFIX = "review:image-matches:"


_redis: redis.Redis | None = None


_redis_lock = threading.Lock()


# Without Redis (development only), this process's own counts.
_local_counts: dict[int, Counter[int]] = {}


# Counts deferred by match calls, per hour, until the next flush; and its lock.
_pending: dict[int, Counter[int]] = {}
_pending_lock = threading.Lock()
# Images kept waiting while Redis does not answer; beyond it the oldest hour is dropped.
_MAX_PENDING_IMAGES = 100_000


def _client() -> redis.Redis | None:
    global _redis  # one connection pool per process
    if not settings.REDIS_URL:
        return None
    with _redis_lock:
        if _redis is None:
            _redis = redis.Redis.from_url(
                # Short: a match call never waits long on a counter.
                settings.REDIS_URL,
                socket_timeout=0.25,
                socket_connect_timeout=0.25,
            )
        return _redis


def _hour(moment: float | None = None) -> int:
    return int(time.time() if moment is None else moment) // _HOUR


def image_matches_record(image_ids: Iterable[int], *, moment: float | None = None) -> None:
    """Count one match for each occurrence of an id in ``image_ids``, in the current hour.

    One round trip to Redis, only when something matched; never raises (matching must not fail
    because a counter could not be written; the loss is logged).
    """
    counts = Counter(image_ids)
    if counts and not _write({_hour(moment): counts}):
        logger.warning("match counts not recorded: Redis unreachable")


def image_matches_defer(image_ids: Iterable[int], *, moment: float | None = None) -> None:
    """``image_matches_record``, written by the next ``image_matches_flush`` (this module's
    docstring); no round trip now."""
    counts = Counter(image_ids)
    if not counts:
        return
    with _pending_lock:
        _pending.setdefault(_hour(moment), Counter()).update(counts)
        while len(_pending) > 1 and sum(map(len, _pending.values())) > _MAX_PENDING_IMAGES:
            del _pending[min(_pending)]
            logger.warning("match counts dropped: Redis is not answering")


def image_matches_flush() -> int:
    """Write the deferred counts in one round trip; how many images' counts were written.

    Counts that could not be written (Redis unreachable) wait for the next flush; never raises.
    """
    with _pending_lock:
        pending = dict(_pending)
        _pending.clear()
    if not pending:
        return 0
    if _write(pending):
        return sum(map(len, pending.values()))
    with _pending_lock:
        for hour, counts in pending.items():
            _pending.setdefault(hour, Counter()).update(counts)
    logger.warning("match counts not recorded yet: Redis unreachable; kept for the next attempt")
    return 0


def _write(counts_by_hour: dict[int, Counter[int]]) -> bool:
    """Add these counts, hour by hour, in one round trip; False if Redis could not be reached."""
    client = _client()
    if client is None:
        for hour, counts in counts_by_hour.items():
            _local_counts.setdefault(hour, Counter()).update(counts)
        latest = max(counts_by_hour)
        for old in [h for h in _local_counts if h <= latest - _WINDOW_HOURS]:
            del _local_counts[old]  # Past the 24-hour window: as Redis expires its keys.
        return True
    try:
        with client.pipeline(transaction=False) as pipe:
            for hour, counts in counts_by_hour.items():
                key = f"{_KEY_PREFIX}{hour}"
                for image_id, count in counts.items():
                    pipe.hincrby(key, str(image_id), count)
                pipe.expire(key, (_WINDOW_HOURS + 2) * _HOUR)
            pipe.execute()
    except (redis.RedisError, OSError):
        return False
    return True


def image_match_counts(
    *, image_ids: Collection[int] | None = None, moment: float | None = None
) -> dict[int, int]:
    """Each image's matches over the 24 hours up to ``moment`` (now): every image that matched,
    or only ``image_ids``. One round trip to Redis; empty if Redis cannot be reached. This
    process's deferred counts are written first."""
    image_matches_flush()
    last = _hour(moment)
    hours = range(last - _WINDOW_HOURS + 1, last + 1)
    totals: Counter[int] = Counter()
    client = _client()
    if client is None:
        for hour in hours:
            totals.update(_local_counts.get(hour, Counter()))
        if image_ids is not None:
            return {image_id: totals[image_id] for image_id in image_ids}
        return dict(totals)
    fields = [str(image_id) for image_id in image_ids] if image_ids is not None else None
    try:
        with client.pipeline(transaction=False) as pipe:
            for hour in hours:
                if fields is None:
                    pipe.hgetall(f"{_KEY_PREFIX}{hour}")
                elif fields:
                    pipe.hmget(f"{_KEY_PREFIX}{hour}", fields)
            answers = pipe.execute()
    except (redis.RedisError, OSError):
        logger.warning("match counts not read: Redis unreachable")
        return {}
    for found in answers:
        if fields is None:
            for image_id, count in found.items():
                totals[int(image_id)] += int(count)
        else:
            for image_id, count in zip(fields, found, strict=True):
                totals[int(image_id)] += int(count or 0)
    if image_ids is not None:
        return {image_id: totals[image_id] for image_id in image_ids}
    return dict(totals)

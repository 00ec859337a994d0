"""Rate limits of the partner API on the shared cache (Redis in production).

Partner limits count each hash of a batch, not each request: a batch of 1,000 hashes costs what
1,000 single calls cost. Public endpoints are limited per client through registry.ratelimits,
where the client is known only by a keyed digest of its address that changes every day.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest
from redis.exceptions import RedisError

from api.errors import RateLimited
from api.models import Partner
from registry.ratelimits import client_usage

logger = logging.getLogger(__name__)

_WINDOW_SECONDS = 60
_CACHE_ERRORS = (RedisError, OSError)


def limit_client(request: HttpRequest, *, group: str, rate: str) -> None:
    """Count one request of this client in ``group``; raise RateLimited past ``rate``."""
    usage = client_usage(request, group, rate)
    if usage is not None and usage["should_limit"]:
        raise RateLimited(retry_after=int(usage["time_left"]))


# Add to a window's counter and (re)set its expiry, atomically, in one round trip.
_WINDOW_ADD_SCRIPT = """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return used
"""


def _window_add(cache_key: str, count: int) -> int:
    """Add ``count`` to the window's counter (created at 0 if absent); its new value.

    On Redis this is one round trip (a script run on the key the cache API would use), on a
    client kept with the cache's connection; Django's add-then-incr took three round trips and
    built two redis-py clients, on every match call (tests/load/).
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        script = getattr(backend, "_window_add_script", None)
        if script is None:
            # The redis-py client of Django's RedisCache (not in the type stubs), made once.
            client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
            script = client.register_script(_WINDOW_ADD_SCRIPT)
            backend._window_add_script = script  # type: ignore[attr-defined]
        key = backend.make_and_validate_key(cache_key)
        return int(script(keys=[key], args=[count, _WINDOW_SECONDS + 5]))
    try:
        cache.add(cache_key, 0, _WINDOW_SECONDS + 5)
        return cache.incr(cache_key, count)
    except ValueError:  # The window expired between add and incr: start the next one.
        cache.set(cache_key, count, _WINDOW_SECONDS + 5)
        return count


def limit_partner_hashes(partner: Partner, count: int, *, slowed_key: int | None = None) -> None:
    """Count ``count`` hashes against the partner's per-minute budget; raise RateLimited past it.

    django-ratelimit counts one per call; a batch must count each of its hashes, so this is the
    same fixed-window counter, incremented by the batch size in one atomic cache operation.
    ``slowed_key``: the id of a key under a probing alert (api.probing), which gets the budget
    divided by PROBING_SLOWDOWN_FACTOR, on a counter of its own.
    """
    limit = partner.match_hashes_per_minute or settings.MATCH_HASHES_PER_MINUTE
    window = int(time.time()) // _WINDOW_SECONDS
    cache_key = f"rl:match-hashes:{partner.pk}:{window}"
    if slowed_key is not None:
        limit = max(1, limit // settings.PROBING_SLOWDOWN_FACTOR)
        cache_key = f"rl:match-hashes:key:{slowed_key}:{window}"
    try:
        used = _window_add(cache_key, count)
    except _CACHE_ERRORS:
        logger.warning("rate-limit cache unreachable; partner %s not limited", partner.pk)
        return
    if used > limit:
        retry_after = _WINDOW_SECONDS - int(time.time()) % _WINDOW_SECONDS
        raise RateLimited(
            retry_after=retry_after, details={"hashes_per_minute": limit, "window_seconds": 60}
        )

"""Rate limits of the partner API on the shared cache (Redis in production).

Partner limits count each hash of a batch, not each request: a batch of 1,000 hashes costs what
1,000 single calls cost. Public endpoints are limited per client through registry.ratelimits,
where the client is known only by a keyed digest of its address that changes every day.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
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


def limit_partner_hashes(partner: Partner, count: int) -> None:
    """Count ``count`` hashes against the partner's per-minute budget; raise RateLimited past it.

    django-ratelimit counts one per call; a batch must count each of its hashes, so this is the
    same fixed-window counter, incremented by the batch size in one atomic cache operation.
    """
    limit = partner.match_hashes_per_minute or settings.MATCH_HASHES_PER_MINUTE
    window = int(time.time()) // _WINDOW_SECONDS
    cache_key = f"rl:match-hashes:{partner.pk}:{window}"
    try:
        cache.add(cache_key, 0, _WINDOW_SECONDS + 5)
        used = cache.incr(cache_key, count)
    except ValueError:  # The window expired between add and incr: start the next one.
        cache.set(cache_key, count, _WINDOW_SECONDS + 5)
        used = count
    except _CACHE_ERRORS:
        logger.warning("rate-limit cache unreachable; partner %s not limited", partner.pk)
        return
    if used > limit:
        retry_after = _WINDOW_SECONDS - int(time.time()) % _WINDOW_SECONDS
        raise RateLimited(
            retry_after=retry_after, details={"hashes_per_minute": limit, "window_seconds": 60}
        )

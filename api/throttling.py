"""Rate limits of the partner API on the shared cache (Redis in production).

Partner limits count each hash of a batch, not each request: a batch of 1,000 hashes costs what
1,000 single calls cost. Public endpoints are limited per client through registry.ratelimits,
where the client is known only by a keyed digest of its address that changes every day.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from api.authentication import PartnerPrincipal
from registry.exceptions import RateLimited
from registry.ratelimits import client_usage

logger = logging.getLogger(__name__)

_CACHE_ERRORS = (RedisError, OSError)


def limit_client(request: HttpRequest, *, group: str, rate: str) -> None:
    """Count one request of this client in ``group``; raise RateLimited past ``rate``."""
    usage = client_usage(request, group, rate)
    if usage is not None and usage["should_limit"]:
        raise RateLimited(retry_after=int(usage["time_left"]))


class PartnerSyncThrottle(SimpleRateThrottle):
    """SYNC_REQUESTS_PER_MINUTE feed requests a partner may make, both feeds together.

    Counted per partner (never per address) on the shared cache; past it, 429 ``rate_limited``
    with Retry-After. With the cache unreachable the request goes through (logged), as for the
    other limits: a partner's sync of withdrawals matters more than the limit.
    """

    scope = "sync"

    def get_rate(self) -> str:
        return f"{settings.SYNC_REQUESTS_PER_MINUTE}/min"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        principal = request.user
        if not isinstance(principal, PartnerPrincipal):
            return None
        return f"rl:sync:{principal.partner.pk}"

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError):
            logger.warning("rate-limit cache unreachable; sync feeds not limited")
            return True

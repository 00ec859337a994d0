"""Per-client rate limits, with django-ratelimit on the shared cache.

Clients are counted under a keyed digest of their address that changes every day: the address
itself is never stored, not even in the cache. The people's pages and the partner API's public
case endpoints both count through here.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_CACHE_ERRORS = (RedisError, OSError)


def client_digest(request: HttpRequest) -> str:
    """A keyed digest of the client's address that changes every day: never the address."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.TRUSTED_PROXIES and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        address = hops[-settings.TRUSTED_PROXIES] if len(hops) >= settings.TRUSTED_PROXIES else ""
    else:
        address = request.META.get("REMOTE_ADDR", "")
    day = timezone.now().strftime("%Y-%m-%d")
    key = hmac.new(settings.SECRET_KEY.encode(), f"client-digest:{day}".encode(), hashlib.sha256)
    return hmac.new(key.digest(), address.encode(), hashlib.sha256).hexdigest()[:32]


def _client_key(group: str, request: HttpRequest) -> str:
    return client_digest(request)


def client_usage(
    request: HttpRequest, group: str, rate: str | None = None
) -> dict[str, int] | None:
    """Count one request of this client in ``group`` (default rate: PUBLIC_CASE_RATE).

    Returns django-ratelimit's usage (``should_limit``, ``time_left``...), or None when nothing
    was counted. With the cache unreachable the request goes through (logged): a person's
    registration or withdrawal matters more than a limit.
    """
    try:
        usage: dict[str, int] | None = get_usage(
            request,
            group=group,
            key=_client_key,
            rate=rate or settings.PUBLIC_CASE_RATE,
            increment=True,
        )
    except _CACHE_ERRORS:
        logger.warning("rate-limit cache unreachable; %s not limited", group)
        return None
    return usage


def over_limit(request: HttpRequest, group: str) -> bool:
    """Count one request in ``group``; True past PUBLIC_CASE_RATE for this client."""
    usage = client_usage(request, group)
    return bool(usage is not None and usage["should_limit"])

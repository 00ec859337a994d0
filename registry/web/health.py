"""Health and readiness probes. (The people's pages are in registry/web/.)

``/ready`` tells anyone whether this process can match. Its figures (the index's size, the
change it has applied, the latest change) grow by eight with each photo registered and by one
with each change: in public they would show registrations and withdrawals as they happen. They
are answered only to a request carrying the operators' ``READY_TOKEN``.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from registry.keycache import key_cache
from registry.matching.follower import get_matcher
from registry.models import Change

READY_TOKEN_HEADER = "X-Ready-Token"  # noqa: S105 - a header name


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. (Readiness, with the index, is /ready.)"""
    return JsonResponse({"status": "ok"})


def _operator(request: HttpRequest) -> bool:
    """True when the request carries READY_TOKEN (never when no token is configured)."""
    expected: str = settings.READY_TOKEN
    offered = request.headers.get(READY_TOKEN_HEADER, "")
    return bool(expected) and hmac.compare_digest(offered.encode(), expected.encode())


@require_GET
@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 503 until this process's match index is loaded, then 200.

    With the operators' token in ``X-Ready-Token``, also the index's size and freshness.
    """
    status = get_matcher().status()
    code = 200 if status.ready else 503
    # Read for everyone: a database that cannot be reached makes the process not ready (503,
    # DatabaseUnavailableMiddleware), though only operators are shown the figure.
    latest = Change.objects.aggregate(latest=Max("id"))["latest"] or 0
    if not _operator(request):
        return JsonResponse({"ready": status.ready}, status=code)
    return JsonResponse(
        {
            "ready": status.ready,
            "index_size": status.size,
            "index_bytes": status.nbytes,
            "applied_change": status.applied_change,
            "latest_change": latest,
            "changes_behind": max(0, latest - status.applied_change) if status.ready else latest,
            # Whether this process caches partner keys (its listener is connected), and how many.
            "partner_key_cache_live": key_cache.live,
            "partner_keys_cached": len(key_cache),
        },
        status=code,
    )

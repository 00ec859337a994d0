"""Health and readiness probes. (The people's pages are in registry/web/.)"""

from __future__ import annotations

from django.db.models import Max
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from registry.matching.follower import get_matcher
from registry.models import Change


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. (Readiness, with the index, is /ready.)"""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 503 until this process's match index is loaded; its size and freshness."""
    status = get_matcher().status()
    latest = Change.objects.aggregate(latest=Max("id"))["latest"] or 0
    return JsonResponse(
        {
            "ready": status.ready,
            "index_size": status.size,
            "index_bytes": status.nbytes,
            "applied_change": status.applied_change,
            "latest_change": latest,
            "changes_behind": max(0, latest - status.applied_change) if status.ready else latest,
        },
        status=200 if status.ready else 503,
    )

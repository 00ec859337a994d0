"""The public transparency page: the registry's daily figures, with no partner named.

The same series as the admin dashboard (registry/selectors/stats.py) without the per-partner charts,
drawn as SVG by the server, in the person's language, and the same figures as CSV. Anyone may ask
for this page, so its figures are computed at most once every few minutes (kept in the shared cache;
counts and labels only). The page says when they were computed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from registry.charts import chart_views
from registry.selectors import stats
from registry.web import dates

logger = logging.getLogger(__name__)
CACHE_SECONDS = 300


def _public_stats() -> tuple[stats.DailyStats, dt.datetime]:
    """The public figures and when they were computed, from the cache when that was less than
    CACHE_SECONDS ago.

    A cache that fails is skipped: the page is computed afresh rather than refused.
    """
    key = f"stats:public:v2:{stats.DEFAULT_DAYS}:{timezone.now().date().isoformat()}"
    try:
        cached = cache.get(key)
    except Exception:  # any failure of the cache: compute instead
        logger.warning("the cache is unavailable; transparency figures computed afresh")
        cached = None
    if (
        isinstance(cached, tuple)
        and len(cached) == 2
        and isinstance(cached[0], stats.DailyStats)
        and isinstance(cached[1], dt.datetime)
    ):
        return cached[0], cached[1]
    computed_at = timezone.now()
    figures = stats.daily_stats(days=stats.DEFAULT_DAYS, with_partners=False)
    try:
        cache.set(key, (figures, computed_at), CACHE_SECONDS)
    except Exception:  # any failure of the cache: serve what was computed
        logger.warning("the cache is unavailable; transparency figures not kept")
    return figures, computed_at


@require_GET
def transparency(request: HttpRequest) -> HttpResponse:
    """Registrations, withdrawals, partners' checks and feedback, and the review queue, per day
    over the last DEFAULT_DAYS days."""
    figures, computed_at = _public_stats()
    return render(
        request,
        "registry/transparency.html",
        {
            "stats": figures,
            "days": len(figures.days),
            "charts": chart_views(figures),
            "first_day": dates.long_date(figures.days[0]),
            "last_day": dates.long_date(figures.days[-1]),
            "computed_at": computed_at,
            "computed_at_text": dates.long_datetime(computed_at),
            "refresh_minutes": CACHE_SECONDS // 60,
        },
    )


@require_GET
def transparency_csv(request: HttpRequest) -> HttpResponse:
    """The transparency page's figures as CSV: day, chart, series, label, value."""
    figures, _computed_at = _public_stats()
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(stats.stats_rows(figures))
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="rempart-transparency-{figures.days[-1].isoformat()}.csv"'
    )
    return response

"""Statistics of the registry: daily series for the admin dashboard and the transparency page.

Selectors only, one query per group of series (never one per day or per partner). Every figure
is a count: no hash, no case reference, no address. The admin dashboard also splits match calls
by partner; the public transparency page is the same figures with no partner named.

Match calls and partners live in the partner API (``api.MatchCall``, ``api.Partner``). The
registry does not import ``api``: their models are looked up by name, as registry names the
partner API's tasks.

The registry keeps no history of image statuses, so the review queue's size on a past day is
derived: an image waiting for review now (``received`` or ``disputed``) counts from the day it
was registered. The last point is the queue today, exactly; earlier points leave out images that
were in the queue then and have been decided since.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Max, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_stubs_ext import StrOrPromise

from registry.dbrouting import replica_reads
from registry.models import (
    Case,
    Disclosure,
    Feedback,
    MatchCall,
    Partner,
    RegisteredImage,
    WithdrawalAck,
)

MIN_DAYS = 7
MAX_DAYS = 366
DEFAULT_DAYS = 30
REVIEW_QUEUE = (RegisteredImage.Status.RECEIVED, RegisteredImage.Status.DISPUTED)

# The labels people read on the transparency page, in their language.
PURPOSE_LABELS: dict[str, StrOrPromise] = {
    "publish": _("Before publishing"),
    "ai_edit": _("Before an AI edit"),
}
VERDICT_LABELS: dict[str, StrOrPromise] = {
    Feedback.Verdict.BLOCKED: _("Blocked after human review"),
    Feedback.Verdict.NOT_BLOCKED: _("Not blocked"),
    Feedback.Verdict.PENDING_REVIEW: _("Pending review"),
}


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: a value per day of the period."""

    key: str
    label: StrOrPromise
    values: list[int]

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass(frozen=True, slots=True)
class Chart:
    """Related series drawn together (for example match calls, one series per purpose)."""

    key: str
    title: StrOrPromise
    series: list[Series]
    # Cumulative charts (the queue's size) show their last value, not a total.
    is_level: bool = False


@dataclass(frozen=True, slots=True)
class DailyStats:
    """Every chart over ``days`` (oldest first), in the order they are shown."""

    days: list[dt.date]
    charts: list[Chart] = field(default_factory=list)


def _per_day(
    queryset: QuerySet[Any], *, moment: str, start: dt.datetime, by: str | None = None, **sums: Any
) -> list[dict[str, Any]]:
    """Rows of ``queryset`` from ``start`` grouped by the day of ``moment`` (and ``by``)."""
    grouping = ["day", by] if by else ["day"]
    return list(
        queryset.filter(**{f"{moment}__gte": start})
        .annotate(day=TruncDate(moment, tzinfo=dt.UTC))
        .values(*grouping)
        .annotate(**sums)
        .order_by()
    )


def _series(
    rows: Iterable[Mapping[str, Any]],
    *,
    days: list[dt.date],
    value: str,
    by: str | None = None,
    labels: Mapping[Any, StrOrPromise] | None = None,
    key: str,
    label: StrOrPromise = "",
) -> list[Series]:
    """Spread grouped rows over ``days``: one series per ``by`` value, zero on empty days."""
    index = {day: position for position, day in enumerate(days)}
    # Every known label gets a series, even an empty one.
    found: dict[Any, list[int]] = {name: [0] * len(days) for name in labels or {}}
    for row in rows:
        position = index.get(row["day"])
        if position is not None:
            name = row[by] if by else None
            found.setdefault(name, [0] * len(days))[position] += int(row[value] or 0)
    if not found and by is None:
        found[None] = [0] * len(days)
    return [
        Series(
            key=f"{key}:{name}" if by else key,
            label=(labels or {}).get(name, str(name)) if by else label,
            values=values,
        )
        for name, values in found.items()
    ]


def period(days: int, *, today: dt.date | None = None) -> list[dt.date]:
    """The last ``days`` days, oldest first, ending today (UTC)."""
    last = today or timezone.now().astimezone(dt.UTC).date()
    return [last - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


@replica_reads()
def daily_stats(
    *, days: int = DEFAULT_DAYS, with_partners: bool, today: dt.date | None = None
) -> DailyStats:
    """Registrations, withdrawals, match calls and matches by purpose (and by partner when
    ``with_partners``), feedback verdicts and the review queue, a value per day.

    ``days`` is clamped to MIN_DAYS..MAX_DAYS. "Matches" counts the hashes of a call that matched
    at least one registered image. Reads only; about seven queries whatever the period, from the
    replica when one is configured (daily figures tolerate its lag).
    """
    days = max(MIN_DAYS, min(MAX_DAYS, days))
    period_days = period(days, today=today)
    start = dt.datetime.combine(period_days[0], dt.time.min, tzinfo=dt.UTC)
    match_call = MatchCall
    purposes = {
        purpose: PURPOSE_LABELS.get(purpose, purpose) for purpose in match_call.Purpose.values
    }

    cases = _per_day(Case.objects.all(), moment="created_at", start=start, count=Count("pk"))
    # A person's photos and videos, apart (a partner's submissions are the review queue's).
    items = _per_day(
        RegisteredImage.objects.filter(case__isnull=False),
        moment="created_at",
        start=start,
        by="kind",
        count=Count("pk"),
    )
    items_withdrawn = _per_day(
        RegisteredImage.objects.filter(case__isnull=False),
        moment="withdrawn_at",
        start=start,
        by="kind",
        count=Count("pk"),
    )
    photos, videos = _by_kind(items)
    photos_withdrawn, videos_withdrawn = _by_kind(items_withdrawn)
    withdrawn = _per_day(Case.objects.all(), moment="withdrawn_at", start=start, count=Count("pk"))
    calls = _per_day(
        match_call.objects.all(),
        moment="created_at",
        start=start,
        by="purpose",
        count=Count("pk"),
        matched=Sum("matched_hashes"),
    )
    verdicts = _per_day(
        Feedback.objects.all(), moment="created_at", start=start, by="verdict", count=Count("pk")
    )
    # Every image waiting now, by registration day (older ones count from the first day).
    waiting = list(
        RegisteredImage.objects.filter(status__in=REVIEW_QUEUE)
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(count=Count("pk"))
        .order_by()
    )
    queue = _levels(waiting, period_days)
    # Every photo and video of a case matching now, by registration day, counted as the queue.
    matching = list(
        RegisteredImage.objects.filter(case__isnull=False, status__in=RegisteredImage.MATCHABLE)
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day", "kind")
        .annotate(count=Count("pk"))
        .order_by()
    )
    photos_matching, videos_matching = _by_kind(matching)

    def spread(rows: list[dict[str, Any]], **options: Any) -> list[Series]:
        return _series(rows, days=period_days, **options)

    registrations = [
        *spread(cases, value="count", key="cases_registered", label=_("Cases opened")),
        *spread(photos, value="count", key="photos_registered", label=_("Photos registered")),
        *spread(videos, value="count", key="videos_registered", label=_("Videos registered")),
    ]
    withdrawals = [
        *spread(withdrawn, value="count", key="cases_withdrawn", label=_("Cases withdrawn")),
        *spread(
            photos_withdrawn, value="count", key="photos_withdrawn", label=_("Photos withdrawn")
        ),
        *spread(
            videos_withdrawn, value="count", key="videos_withdrawn", label=_("Videos withdrawn")
        ),
    ]
    charts = [
        Chart("registrations", _("Registrations"), registrations),
        Chart("withdrawals", _("Withdrawals"), withdrawals),
        Chart(
            "match_calls",
            _("Partner checks, by purpose"),
            spread(calls, value="count", by="purpose", labels=purposes, key="match_calls"),
        ),
        Chart(
            "matches",
            _("Photos checked that matched, by purpose"),
            spread(calls, value="matched", by="purpose", labels=purposes, key="matches"),
        ),
    ]
    if with_partners:
        by_partner = _per_day(
            match_call.objects.all(),
            moment="created_at",
            start=start,
            by="partner_id",
            count=Count("pk"),
            matched=Sum("matched_hashes"),
        )
        ids = {row["partner_id"] for row in by_partner}
        names = dict(Partner.objects.filter(pk__in=ids).values_list("pk", "name"))
        charts += [
            Chart(
                "partner_match_calls",
                _("Partner checks, by partner"),
                spread(
                    by_partner, value="count", by="partner_id", labels=names, key="partner_calls"
                ),
            ),
            Chart(
                "partner_matches",
                _("Photos checked that matched, by partner"),
                spread(
                    by_partner,
                    value="matched",
                    by="partner_id",
                    labels=names,
                    key="partner_matches",
                ),
            ),
        ]
    charts += [
        Chart(
            "feedback",
            _("Partners' feedback on matches, by verdict"),
            spread(
                verdicts,
                value="count",
                by="verdict",
                labels=VERDICT_LABELS,
                key="feedback",
            ),
        ),
        Chart(
            "matching_now",
            _("Photos and videos matching"),
            [
                Series(
                    key="photos_matching",
                    label=_("Photos matching"),
                    values=_levels(photos_matching, period_days),
                ),
                Series(
                    key="videos_matching",
                    label=_("Videos matching"),
                    values=_levels(videos_matching, period_days),
                ),
            ],
            is_level=True,
        ),
        Chart(
            "review_queue",
            _("Review queue"),
            [Series(key="review_queue", label=_("Photos awaiting review"), values=queue)],
            is_level=True,
        ),
    ]
    return DailyStats(days=period_days, charts=charts)


def _levels(rows: Iterable[Mapping[str, Any]], period_days: list[dt.date]) -> list[int]:
    """A level per day from rows of (registration ``day``, ``count``) of items in a state now:
    each counts from its day on (older ones from the first day)."""
    levels = [0] * len(period_days)
    for row in rows:
        first = next((i for i, day in enumerate(period_days) if day >= row["day"]), None)
        if first is not None:
            for position in range(first, len(period_days)):
                levels[position] += row["count"]
    return levels


def _by_kind(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows grouped by ``kind``, split into the photos' and the videos'."""
    photos = [row for row in rows if row["kind"] == RegisteredImage.Kind.PHOTO]
    videos = [row for row in rows if row["kind"] == RegisteredImage.Kind.VIDEO]
    return photos, videos


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text, never as a formula (a partner's name is theirs)."""
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def stats_rows(stats: DailyStats) -> list[list[str]]:
    """The figures as CSV rows: a header, then one row per day, chart and series."""
    rows = [["day", "chart", "series", "label", "value"]]
    for chart in stats.charts:
        for series in chart.series:
            label = _cell(str(series.label))
            for day, value in zip(stats.days, series.values, strict=True):
                rows.append([day.isoformat(), chart.key, series.key, label, str(value)])
    return rows


@dataclass(frozen=True, slots=True)
class PurposeActivity:
    purpose: str
    calls: int
    hashes: int
    matched_hashes: int
    last_call_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class PartnerActivity:
    """What one partner did with the registry, all time: counts and last times, no hash."""

    match_calls: list[PurposeActivity]
    feedback: dict[str, int]
    images_received: int
    last_sync_at: dt.datetime | None
    withdrawals_acknowledged: int
    last_acknowledged_at: dt.datetime | None

    @property
    def calls(self) -> int:
        return sum(row.calls for row in self.match_calls)

    @property
    def matched_hashes(self) -> int:
        return sum(row.matched_hashes for row in self.match_calls)


def partner_activity(*, partner_id: int) -> PartnerActivity:
    """Match calls by purpose, feedback by verdict, the last time the sync feeds gave it hashes
    (the disclosure ledger), and the withdrawals it confirmed. Four queries."""
    calls = (
        MatchCall.objects.filter(partner_id=partner_id)
        .values("purpose")
        .annotate(
            calls=Count("pk"),
            hashes=Sum("hashes"),
            matched=Sum("matched_hashes"),
            last=Max("created_at"),
        )
        .order_by("purpose")
    )
    feedback = dict(
        Feedback.objects.filter(partner_id=partner_id)
        .values("verdict")
        .annotate(count=Count("pk"))
        .order_by()
        .values_list("verdict", "count")
    )
    sync = Disclosure.objects.filter(partner_id=partner_id).aggregate(
        images=Count("pk"), last=Max("last_disclosed_at")
    )
    acks = WithdrawalAck.objects.filter(partner_id=partner_id).aggregate(
        count=Count("pk"), last=Max("acknowledged_at")
    )
    return PartnerActivity(
        match_calls=[
            PurposeActivity(
                purpose=row["purpose"],
                calls=row["calls"],
                hashes=row["hashes"] or 0,
                matched_hashes=row["matched"] or 0,
                last_call_at=row["last"],
            )
            for row in calls
        ],
        feedback={verdict: feedback.get(verdict, 0) for verdict in Feedback.Verdict.values},
        images_received=sync["images"],
        last_sync_at=sync["last"],
        withdrawals_acknowledged=acks["count"],
        last_acknowledged_at=acks["last"],
    )

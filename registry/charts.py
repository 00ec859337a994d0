"""Charts drawn by the server as inline SVG, for the statistics pages.

No script and no style attribute (the Content-Security-Policy allows neither inline): only SVG
presentation attributes. Each chart carries a title for screen readers; its figures are also in
the page's CSV export.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django_stubs_ext import StrOrPromise

from registry.selectors.stats import Chart, DailyStats
from registry.web.dates import day_label

WIDTH = 560
HEIGHT = 220
LEFT = 52
RIGHT = 12
TOP = 12
BOTTOM = 34
# Distinguishable for the common colour-vision deficiencies (Okabe and Ito).
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")


def _ceiling(value: int) -> int:
    """A round top for the value axis: 1, 2 or 5 times a power of ten, at least ``value``."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def _x(position: int, count: int) -> float:
    if count <= 1:
        return LEFT + (WIDTH - LEFT - RIGHT) / 2
    return LEFT + position * (WIDTH - LEFT - RIGHT) / (count - 1)


def _y(value: int, top: int) -> float:
    plot = HEIGHT - TOP - BOTTOM
    return TOP + plot - (value / top) * plot


def _day_label(day: dt.date) -> str:
    # The pages never abbreviate months, and write the first of a month "1er" in French.
    return day_label(day)


def line_chart(chart: Chart, days: Sequence[dt.date]) -> SafeString:
    """One SVG: a line per series over ``days``, a value axis from zero (the legend is the
    page's own text: see ``chart_views``)."""
    count = len(days)
    top = _ceiling(max((max(series.values, default=0) for series in chart.series), default=0))
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="stats-chart" role="img" '
            'viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMinYMin meet" '
            'font-family="system-ui, sans-serif" font-size="15" aria-labelledby="chart-{}">'
            '<title id="chart-{}">{}</title>',
            WIDTH,
            HEIGHT,
            chart.key,
            chart.key,
            chart.title,
        ),
        # Axes and the top grid line.
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#767676" stroke-width="1"/>',
            LEFT,
            HEIGHT - BOTTOM,
            WIDTH - RIGHT,
            HEIGHT - BOTTOM,
        ),
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#d0d0d0" stroke-width="1"/>',
            LEFT,
            TOP,
            WIDTH - RIGHT,
            TOP,
        ),
        format_html(
            '<text x="{}" y="{}" text-anchor="end" fill="#333333">{}</text>',
            LEFT - 6,
            TOP + 4,
            top,
        ),
        format_html(
            '<text x="{}" y="{}" text-anchor="end" fill="#333333">0</text>',
            LEFT - 6,
            HEIGHT - BOTTOM + 4,
        ),
    ]
    if count:
        for position, anchor in ((0, "start"), (count // 2, "middle"), (count - 1, "end")):
            parts.append(
                format_html(
                    '<text x="{}" y="{}" text-anchor="{}" fill="#333333">{}</text>',
                    f"{_x(position, count):.1f}",
                    HEIGHT - BOTTOM + 22,
                    anchor,
                    _day_label(days[position]),
                )
            )
    for index, series in enumerate(chart.series):
        colour = PALETTE[index % len(PALETTE)]
        points = " ".join(
            f"{_x(position, count):.1f},{_y(value, top):.1f}"
            for position, value in enumerate(series.values)
        )
        parts.append(
            format_html(
                '<polyline points="{}" fill="none" stroke="{}" stroke-width="2" '
                'stroke-linejoin="round"/>',
                points,
                colour,
            )
        )
        if count <= 31:
            parts.extend(
                format_html(
                    '<circle cx="{}" cy="{}" r="2.5" fill="{}"/>',
                    f"{_x(position, count):.1f}",
                    f"{_y(value, top):.1f}",
                    colour,
                )
                for position, value in enumerate(series.values)
            )
    parts.append(SafeString("</svg>"))
    # Every part comes from format_html, which escaped the labels.
    return mark_safe("".join(parts))  # noqa: S308


@dataclass(frozen=True, slots=True)
class LegendEntry:
    colour: str
    label: StrOrPromise
    # The series' total over the period; for a level (the queue), its last value.
    figure: int


@dataclass(frozen=True, slots=True)
class ChartView:
    """What a page shows of one chart: its title, the SVG, and the legend as text."""

    key: str
    title: StrOrPromise
    svg: SafeString
    legend: list[LegendEntry]


def chart_views(stats: DailyStats) -> list[ChartView]:
    """Every chart of ``stats``, drawn, with a legend in the colours of its lines."""
    return [
        ChartView(
            key=chart.key,
            title=chart.title,
            svg=line_chart(chart, stats.days),
            legend=[
                LegendEntry(
                    colour=PALETTE[index % len(PALETTE)],
                    label=series.label,
                    figure=series.values[-1] if chart.is_level and series.values else series.total,
                )
                for index, series in enumerate(chart.series)
            ],
        )
        for chart in stats.charts
    ]

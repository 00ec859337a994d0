"""Dates as the people's pages write them, in the reader's language.

Django's date formats cannot write French ordinals: the first day of a month is "1er" in French
("1er décembre 2026"), every other day a plain number. Months are never abbreviated on these
pages, in either language.
"""

from __future__ import annotations

import datetime as dt

from django.utils.formats import date_format
from django.utils.translation import get_language


def _ordinal_first(text: str, day: dt.date) -> str:
    if day.day == 1 and (get_language() or "").startswith("fr"):
        return "1er" + text[1:]
    return text


def long_date(day: dt.date) -> str:
    """The day, the month in full and the year: "1er décembre 2026", "1 December 2026"."""
    return _ordinal_first(date_format(day, "j F Y"), day)


def day_label(day: dt.date) -> str:
    """The day and the month in full, for a chart's axis: "1er décembre", "1 December"."""
    return _ordinal_first(date_format(day, "j F"), day)


def long_datetime(moment: dt.datetime) -> str:
    """The long date and the time in UTC, on 24 hours: "1er décembre 2026, 09:15"."""
    utc = moment.astimezone(dt.UTC)
    return f"{long_date(utc.date())}, {utc:%H:%M}"

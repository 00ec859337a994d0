"""``{{ moment|long_datetime }}``: a time as the people's pages write it (registry.web.dates),
"1er décembre 2026, 09:15" in French, "1 December 2026, 09:15" in English, in UTC."""

from __future__ import annotations

import datetime as dt

from django import template

from registry.web.dates import long_datetime as _long_datetime

register = template.Library()


@register.filter
def long_datetime(moment: dt.datetime | None) -> str:
    return _long_datetime(moment) if moment is not None else ""

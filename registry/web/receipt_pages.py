"""The receipt shown in the register and status pages, rendered in every language of the site.

The receipt replaces the form in the page, at the same address, and its secret is shown only
once: the page's script keeps every rendering so that switching the language re-renders the
receipt in place instead of reloading a page that no longer has it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import translation

TEMPLATE = "registry/_receipt.html"


def receipt_html_by_language(request: HttpRequest, context: dict[str, Any]) -> dict[str, str]:
    """The receipt's HTML in each language of settings.LANGUAGES, by language code.

    ``context`` may hold lazy translations (a scope label): each is rendered in its language.
    """
    rendered: dict[str, str] = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            rendered[code] = render_to_string(TEMPLATE, context, request=request)
    return rendered

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

from registry.web.help import help_resources, platforms_named

TEMPLATE = "registry/_receipt.html"


def receipt_html(request: HttpRequest, context: dict[str, Any]) -> str:
    """The receipt's HTML in the active language.

    ``context`` may hold lazy translations (a scope label), rendered in that language. When it
    says a minor is depicted, the receipt offers the help resources for minors, in it too.
    """
    language = (translation.get_language() or "en").split("-")[0]
    minor_help = help_resources(language).for_minors() if context.get("minor_depicted") else ()
    extra = {"minor_help": minor_help, "platforms": platforms_named(language)}
    return render_to_string(TEMPLATE, {**context, **extra}, request=request)


def receipt_html_by_language(request: HttpRequest, context: dict[str, Any]) -> dict[str, str]:
    """The receipt's HTML (receipt_html) in each language of settings.LANGUAGES, by code."""
    rendered: dict[str, str] = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            rendered[code] = receipt_html(request, context)
    return rendered

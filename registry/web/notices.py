"""Who runs the registry: the legal notice and the privacy notice; and the quick exit.

Both notices are filled from the operator settings (OPERATOR_*, registry/settings.py). Until an
operator sets them the pages say, visibly, what is missing, and ``manage.py check --deploy``
warns (registry.checks). The privacy notice states the periods docs/privacy.md documents, from
the same settings the retention jobs enforce.

The quick exit sends the person to a neutral site (QUICK_EXIT_URL). The page's script replaces
the current history entry with it; this route is the same exit without the script.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@dataclass(frozen=True, slots=True)
class Operator:
    """Who runs this registry, as the operator settings say (empty strings: not set)."""

    name: str
    address: str
    contact_email: str
    dpo_email: str
    publication_director: str
    host: str
    supervisory_authority: str
    supervisory_authority_url: str


def operator() -> Operator:
    """The operator settings, read now (tests override them)."""
    return Operator(
        name=settings.OPERATOR_NAME,
        address=settings.OPERATOR_ADDRESS,
        contact_email=settings.OPERATOR_CONTACT_EMAIL,
        dpo_email=settings.OPERATOR_DPO_EMAIL,
        publication_director=settings.OPERATOR_PUBLICATION_DIRECTOR,
        host=settings.OPERATOR_HOST,
        supervisory_authority=settings.OPERATOR_SUPERVISORY_AUTHORITY,
        supervisory_authority_url=settings.OPERATOR_SUPERVISORY_AUTHORITY_URL,
    )


@require_GET
def legal_notice(request: HttpRequest) -> HttpResponse:
    """The legal notice: who publishes the site, who directs its publication, who hosts it."""
    return render(request, "registry/legal.html", {"operator": operator()})


@require_GET
def privacy_notice(request: HttpRequest) -> HttpResponse:
    """The privacy notice: controller, data, legal basis, recipients, periods, rights."""
    return render(
        request,
        "registry/privacy.html",
        {
            "operator": operator(),
            "tombstone_days": settings.TOMBSTONE_RETENTION_DAYS,
        },
    )


@require_GET
@never_cache
def quick_exit(request: HttpRequest) -> HttpResponse:
    """Leave for the neutral site at once."""
    # The site's Referrer-Policy (same-origin) sends the neutral site no Referer.
    return HttpResponseRedirect(settings.QUICK_EXIT_URL)

"""The registry's admin site: two-factor authentication for every staff account, two roles.

- A password alone opens nothing. After it, a staff member with a confirmed TOTP device types a
  code from it; one with none yet sees only the enrolment page (a QR code and the key, then a
  first code to confirm). Every other admin page needs a session verified by a device.
- Only staff with a role see the admin (registry.roles): reviewers (view the records, decide on
  images) and superusers (also partners, keys, webhooks, settings). Staff in neither see nothing.
- Failed password logins lock the username out (django-axes, see settings), with no address kept.
- The statistics dashboard (registry/selectors/stats.py), drawn as SVG, and its CSV export.
"""

from __future__ import annotations

import base64
import csv
import io
from typing import Any

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.charts import chart_views
from registry.models import AuditEvent
from registry.roles import REVIEWERS, is_reviewer, is_superuser
from registry.selectors import stats
from registry.services.audit import audit_event_record

# The apps whose records reviewers may read, and what they may change besides.
REVIEWER_APPS = ("registry",)
REVIEWER_CHANGES = ("registry.change_registeredimage",)


def client_address_withheld(request: HttpRequest) -> None:
    """AXES_CLIENT_IP_CALLABLE: django-axes is never told the client's address, so its records
    hold none (lockout is by username)."""


def reviewers_group_sync(**kwargs: Any) -> None:
    """post_migrate: create the reviewers group and give it exactly its permissions.

    View every model of REVIEWER_APPS, and REVIEWER_CHANGES. Idempotent; run after each app's
    migrations, so it also picks up models added later.
    """
    group, _ = Group.objects.get_or_create(name=REVIEWERS)
    views = Permission.objects.filter(
        content_type__app_label__in=REVIEWER_APPS, codename__startswith="view_"
    )
    changes = [
        Permission.objects.filter(content_type__app_label=app, codename=codename).first()
        for app, codename in (name.split(".") for name in REVIEWER_CHANGES)
    ]
    wanted = {*views, *(permission for permission in changes if permission is not None)}
    if set(group.permissions.all()) != wanted:
        group.permissions.set(wanted)


class TokenForm(forms.Form):
    token = forms.RegexField(
        regex=r"^\s*\d{6}\s*$",
        label="Code from your authenticator app",
        error_messages={"invalid": "A code is six digits."},
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


def _qr_data_url(text: str) -> str:
    """A QR code of ``text`` as a data: URL of an SVG image (the CSP allows data: images)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()


def _key_groups(device: TOTPDevice) -> str:
    """The device's key in base32, in groups of four, for typing into an app by hand."""
    text = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


class RempartAdminSite(admin.AdminSite):
    site_header = "Rempart administration"
    site_title = "Rempart administration"
    index_title = "Registry administration"
    index_template = "admin/rempart/index.html"

    def has_permission(self, request: HttpRequest) -> bool:
        """A staff member with a role, in a session verified by a second factor."""
        user: Any = request.user
        return bool(
            user.is_active
            and user.is_staff
            and getattr(user, "is_verified", lambda: False)()
            and (is_reviewer(user) or is_superuser(user))
        )

    @method_decorator(never_cache)
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """The password step; a staff member past it goes on to the second factor."""
        user: Any = request.user
        if user.is_authenticated and user.is_active and user.is_staff and not user.is_verified():
            return HttpResponseRedirect(self._two_factor_url(request))
        return super().login(request, extra_context)

    def _two_factor_url(self, request: HttpRequest) -> str:
        target = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME)
        url = reverse("admin:two-factor", current_app=self.name)
        if target:
            url += "?" + urlencode({REDIRECT_FIELD_NAME: target})
        return url

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [
            path("two-factor/", self.two_factor, name="two-factor"),
            path("statistics/", self.admin_view(self.statistics), name="statistics"),
            path("statistics.csv", self.admin_view(self.statistics_csv), name="statistics-csv"),
            *super().get_urls(),
        ]

    # --- Second factor -------------------------------------------------------------------

    @method_decorator(never_cache)
    @method_decorator(csrf_protect)
    def two_factor(self, request: HttpRequest) -> HttpResponse:
        """Confirm a code from the staff member's device, or enrol a first device.

        Reached only after the password step. A wrong code is refused and the device's own
        throttling (django-otp) slows further guesses.
        """
        user: Any = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return redirect_to_login(
                request.get_full_path(), reverse("admin:login", current_app=self.name)
            )
        target = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
        if not url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            target = ""
        target = target or reverse("admin:index", current_app=self.name)
        if user.is_verified():
            return HttpResponseRedirect(target)
        device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
        enrolling = device is None
        if device is None:
            device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
            if device is None:
                device = TOTPDevice.objects.create(
                    user=user, name="Authenticator app", confirmed=False
                )
        form = TokenForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            with transaction.atomic():
                locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
                accepted = locked.verify_token(form.cleaned_data["token"].strip())
                if accepted and enrolling:
                    locked.confirmed = True
                    locked.save(update_fields=["confirmed"])
                    audit_event_record(
                        action=AuditEvent.Action.STAFF_TWO_FACTOR_ENROLLED,
                        actor=f"staff:{user.pk}",
                        subject=f"staff:{user.pk}",
                    )
            if accepted:
                request.session.cycle_key()
                otp_login(request, locked)
                return HttpResponseRedirect(target)
            form.add_error("token", "That code was not accepted. Wait for a new one and retry.")
        context = {
            **self.each_context(request),
            "title": "Set up two-factor authentication" if enrolling else "Two-factor code",
            "form": form,
            "enrolling": enrolling,
            "next": target,
            "qr_data_url": _qr_data_url(device.config_url) if enrolling else "",
            "key_groups": _key_groups(device) if enrolling else "",
        }
        response = TemplateResponse(
            request, "admin/rempart/two_factor.html", context, status=400 if form.errors else 200
        )
        response["Cache-Control"] = "no-store"
        return response

    # --- Statistics ----------------------------------------------------------------------

    def _days(self, request: HttpRequest) -> int | None:
        text = request.GET.get("days", str(stats.DEFAULT_DAYS))
        if not text.isdigit() or not stats.MIN_DAYS <= int(text) <= stats.MAX_DAYS:
            return None
        return int(text)

    def statistics(self, request: HttpRequest) -> HttpResponse:
        """The dashboard: a chart per group of series over the last ``days`` days."""
        days = self._days(request)
        context: dict[str, Any] = {
            **self.each_context(request),
            "title": "Statistics",
            "min_days": stats.MIN_DAYS,
            "max_days": stats.MAX_DAYS,
            "choices": [7, 30, 90, 365],
        }
        if days is None:
            context["error"] = f"days is a whole number from {stats.MIN_DAYS} to {stats.MAX_DAYS}."
            return TemplateResponse(request, "admin/rempart/statistics.html", context, status=400)
        figures = stats.daily_stats(days=days, with_partners=True)
        context.update(
            days=days,
            stats=figures,
            charts=chart_views(figures),
        )
        return TemplateResponse(request, "admin/rempart/statistics.html", context)

    def statistics_csv(self, request: HttpRequest) -> HttpResponse:
        """The dashboard's figures as CSV: day, chart, series, value."""
        days = self._days(request)
        if days is None:
            return HttpResponse(
                f"days is a whole number from {stats.MIN_DAYS} to {stats.MAX_DAYS}.\n",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        figures = stats.daily_stats(days=days, with_partners=True)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(stats.stats_rows(figures))
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        last = figures.days[-1].isoformat()
        response["Content-Disposition"] = (
            f'attachment; filename="rempart-statistics-{days}d-{last}.csv"'
        )
        return response

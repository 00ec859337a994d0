"""Django admin for partners, their keys and webhooks: superusers manage, reviewers read.

A key's text is shown once, on the page answering its issue or rotation, and a generated webhook
secret once, on the page answering the save; neither is ever shown again (the registry keeps a
key only as a digest; the webhook secret is write-only in the form). Every change to a partner,
a key or a webhook is an audit event naming the staff member, never the key or the secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from weakref import WeakKeyDictionary

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from api.models import Partner, PartnerKey, ProbingAlert, WebhookDelivery
from api.probing import probing_alert_clear
from api.services import (
    ROTATION_GRACE,
    KeyIssued,
    partner_key_issue,
    partner_key_revoke,
    partner_key_rotate,
)
from api.webhooks import secret_key, webhook_secret_new, webhook_url_refusal
from registry.admin import ReadOnlyAdmin
from registry.exceptions import InvalidInput
from registry.models import AuditEvent, ConsentRecord, WithdrawalAck
from registry.roles import is_reviewer, is_superuser
from registry.services import audit_event_record
from registry.stats import PURPOSE_LABELS, VERDICT_LABELS, partner_activity

# The expiry proposed for a new key.
DEFAULT_KEY_DAYS = 365
SHOWN_ONCE_TEMPLATE = "admin/rempart/shown_once.html"

# A webhook secret generated while saving a partner, until the response shows it (once).
_generated_secrets: WeakKeyDictionary[HttpRequest, str] = WeakKeyDictionary()


def _actor(request: HttpRequest) -> str:
    return f"staff:{request.user.pk}"


class PartnerKeyInline(admin.TabularInline[Any, Any]):
    model = PartnerKey
    extra = 0
    can_delete = False
    readonly_fields = (
        "lookup_id",
        "scopes",
        "created_at",
        "expires_at",
        "revoked_at",
        "state",
        "key_actions",
    )
    ordering = ("-created_at",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(self.readonly_fields)
        if not is_superuser(request.user):
            fields.remove("key_actions")
        return fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # Keys are issued by the service, which shows the key once.

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="state")
    def state(self, key: PartnerKey) -> str:
        if key.revoked_at is not None:
            return "revoked"
        if key.expires_at is not None and key.expires_at <= timezone.now():
            return "expired"
        return "usable"

    @admin.display(description="actions")
    def key_actions(self, key: PartnerKey) -> SafeString | str:
        if self.state(key) != "usable":
            return "-"
        return format_html(
            '<a href="{}">Rotate</a> · <a href="{}">Revoke</a>',
            reverse("admin:api_partner_key_rotate", args=[key.partner_id, key.pk]),
            reverse("admin:api_partner_key_revoke", args=[key.partner_id, key.pk]),
        )


class WriteOnlyField(forms.CharField):
    """A field whose value is never rendered: changed only when something was typed."""

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data)


class PartnerAdminForm(forms.ModelForm[Partner]):
    """Refuses a webhook the registry could never call: http, or a URL without a secret.

    The webhook secret is write-only: the field never shows it; left empty, the secret stays
    as it is; typed, it replaces it; "generate" makes a new one, shown once after saving.
    """

    webhook_url = forms.URLField(max_length=500, required=False, assume_scheme="https")
    sync_scopes = forms.MultipleChoiceField(
        choices=ConsentRecord.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The kinds of registration whose hashes this partner receives in the feeds.",
    )
    webhook_secret = WriteOnlyField(
        max_length=128,
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: never shown. Empty keeps the current secret.",
    )
    generate_webhook_secret = forms.BooleanField(
        required=False,
        label="Generate a new webhook secret",
        help_text="Replaces the secret; the new one is shown once, after saving.",
    )

    class Meta:
        model = Partner
        fields = [
            "name",
            "is_active",
            "match_hashes_per_minute",
            "sync_scopes",
            "webhook_url",
            "webhook_secret",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generated_secret = ""
        self.initial["webhook_secret"] = ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        url = cleaned.get("webhook_url") or ""
        typed = cleaned.get("webhook_secret") or ""
        if cleaned.get("generate_webhook_secret"):
            self.generated_secret = webhook_secret_new()
            typed = self.generated_secret
        if typed:
            try:
                secret_key(typed)
            except ValueError:
                self.add_error("webhook_secret", "After 'whsec_', a secret is base64.")
        secret = typed or self.instance.webhook_secret
        cleaned["webhook_secret"] = secret
        if url and not (url.startswith("https://") or settings.WEBHOOK_ALLOW_PRIVATE_TARGETS):
            self.add_error("webhook_url", "A webhook address must be https.")
        elif (
            url
            and not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS
            and (refusal := webhook_url_refusal(url))
        ):
            self.add_error("webhook_url", refusal)
        if url and not secret:
            self.add_error("webhook_secret", "A webhook needs a secret to sign its deliveries.")
        return cleaned


class IssueKeyForm(forms.Form):
    scopes = forms.MultipleChoiceField(
        choices=PartnerKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[PartnerKey.Scope.MATCH],
    )
    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        initial=DEFAULT_KEY_DAYS,
        help_text="Empty: the key never expires (not recommended).",
    )


def _activity_table(partner: Partner) -> SafeString:
    activity = partner_activity(partner_id=partner.pk)
    deliveries = dict(
        WebhookDelivery.objects.filter(partner=partner)
        .values("status")
        .annotate(count=Count("pk"))
        .order_by()
        .values_list("status", "count")
    )

    def when(moment: dt.datetime | None) -> str:
        return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"

    rows: list[tuple[Any, ...]] = [
        (
            f"Match calls ({PURPOSE_LABELS.get(row.purpose, row.purpose)})",
            f"{row.calls} calls, {row.hashes} hashes, {row.matched_hashes} matched; "
            f"last {when(row.last_call_at)}",
        )
        for row in activity.match_calls
    ]
    if not activity.match_calls:
        rows.append(("Match calls", "none"))
    rows += [
        (f"Feedback: {VERDICT_LABELS[verdict]}", count)
        for verdict, count in activity.feedback.items()
    ]
    rows += [
        (
            "Last sync (hashes received from the feeds)",
            f"{when(activity.last_sync_at)}; {activity.images_received} images received in all",
        ),
        (
            "Withdrawals acknowledged",
            f"{activity.withdrawals_acknowledged}; last {when(activity.last_acknowledged_at)}",
        ),
        (
            "Webhook deliveries",
            ", ".join(f"{count} {state}" for state, count in sorted(deliveries.items())) or "none",
        ),
    ]
    return format_html(
        '<table class="partner-activity"><tbody>{}</tbody></table>',
        format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>', rows),
    )


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin[Partner]):
    form = PartnerAdminForm
    list_display = ["name", "is_active", "match_hashes_per_minute", "webhook", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    inlines = [PartnerKeyInline]
    change_form_template = "admin/rempart/partner_change_form.html"

    # Only superusers manage partners; reviewers (view permission) read them.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        settings_fields = ["name", "is_active", "match_hashes_per_minute", "sync_scopes"]
        webhook_fields = ["webhook_url", "webhook_state"]
        if self.has_change_permission(request, obj) or (obj is None):
            webhook_fields += ["webhook_secret", "generate_webhook_secret"]
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": settings_fields}),
            ("Webhook", {"fields": webhook_fields}),
        ]
        if obj is not None:
            fieldsets.append(("Activity", {"fields": ["created_at", "activity"]}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["created_at", "webhook_state", "activity"]

    @admin.display(description="webhook")
    def webhook(self, obj: Partner) -> bool:
        return bool(obj.webhook_url and obj.webhook_secret)

    @admin.display(description="webhook secret")
    def webhook_state(self, obj: Partner) -> str:
        return "set (never shown)" if obj.webhook_secret else "not set"

    @admin.display(description="activity")
    def activity(self, obj: Partner) -> SafeString | str:
        return _activity_table(obj) if obj.pk else "-"

    def save_model(self, request: HttpRequest, obj: Partner, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if not change:
                audit_event_record(
                    action=AuditEvent.Action.PARTNER_CREATED,
                    actor=_actor(request),
                    subject=f"partner:{obj.pk}",
                )
            else:
                # Field names only: the secret's value is never in the record.
                fields = {
                    "webhook_secret" if name == "generate_webhook_secret" else name
                    for name in form.changed_data
                }
                if fields:
                    audit_event_record(
                        action=AuditEvent.Action.PARTNER_UPDATED,
                        actor=_actor(request),
                        subject=f"partner:{obj.pk}",
                        details={"fields": sorted(fields)},
                    )
        if form.generated_secret:
            _generated_secrets[request] = form.generated_secret

    def _secret_shown(self, request: HttpRequest, obj: Partner) -> HttpResponse | None:
        secret = _generated_secrets.pop(request, "")
        if not secret:
            return None
        return _shown_once(
            request,
            self,
            obj,
            title="Webhook secret",
            label="webhook secret",
            value=secret,
            facts=[("Webhook address", obj.webhook_url or "not set")],
        )

    def response_add(
        self, request: HttpRequest, obj: Partner, post_url_continue: Any = None
    ) -> Any:
        return self._secret_shown(request, obj) or super().response_add(
            request, obj, post_url_continue
        )

    def response_change(self, request: HttpRequest, obj: Partner) -> Any:
        return self._secret_shown(request, obj) or super().response_change(request, obj)

    # --- Keys: issue, rotate, revoke -----------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:partner_id>/keys/issue/",
                wrap(self.key_issue_view),
                name="api_partner_key_issue",
            ),
            path(
                "<int:partner_id>/keys/<int:key_id>/rotate/",
                wrap(self.key_rotate_view),
                name="api_partner_key_rotate",
            ),
            path(
                "<int:partner_id>/keys/<int:key_id>/revoke/",
                wrap(self.key_revoke_view),
                name="api_partner_key_revoke",
            ),
            *super().get_urls(),
        ]

    def _partner_for_keys(self, request: HttpRequest, partner_id: int) -> Partner:
        if not is_superuser(request.user):
            raise PermissionDenied
        return get_object_or_404(Partner, pk=partner_id)

    def _change_url(self, partner: Partner) -> str:
        return reverse("admin:api_partner_change", args=[partner.pk])

    def key_issue_view(self, request: HttpRequest, partner_id: int) -> HttpResponse:
        """Issue a key with the chosen scopes and expiry; the answer shows it, once."""
        partner = self._partner_for_keys(request, partner_id)
        form = IssueKeyForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            days = form.cleaned_data["expires_in_days"]
            try:
                issued = partner_key_issue(
                    partner=partner,
                    scopes=form.cleaned_data["scopes"],
                    expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
                    actor=_actor(request),
                )
            except InvalidInput as error:
                form.add_error(None, error.message)
            else:
                return _key_shown(request, self, partner, issued, note="")
        return _confirm_page(
            request,
            self,
            partner,
            title=f"Issue a key for {partner.name}",
            form=form,
            action="Issue the key",
            status=400 if form.errors else 200,
        )

    def key_rotate_view(self, request: HttpRequest, partner_id: int, key_id: int) -> HttpResponse:
        """Issue the key's successor; the old one expires after the grace period."""
        partner = self._partner_for_keys(request, partner_id)
        key = get_object_or_404(PartnerKey, pk=key_id, partner=partner)
        error = ""
        if request.method == "POST":
            try:
                issued, old_expiry = partner_key_rotate(key=key, actor=_actor(request))
            except InvalidInput as refused:
                error = refused.message
            else:
                note = (
                    f"The key {key.lookup_id} it replaces keeps working until "
                    f"{old_expiry:%Y-%m-%d %H:%M} UTC, then expires."
                )
                return _key_shown(request, self, partner, issued, note=note)
        return _confirm_page(
            request,
            self,
            partner,
            title=f"Rotate key {key.lookup_id} of {partner.name}",
            text=(
                f"A new key with the same scopes ({', '.join(key.scopes)}) is issued and shown "
                f"once. The key {key.lookup_id} keeps working for "
                f"{ROTATION_GRACE.days} days, for the partner to deploy the new one."
            ),
            error=error,
            action="Rotate the key",
            status=400 if error else 200,
        )

    def key_revoke_view(self, request: HttpRequest, partner_id: int, key_id: int) -> HttpResponse:
        """Revoke a key: refused from the very next request."""
        partner = self._partner_for_keys(request, partner_id)
        key = get_object_or_404(PartnerKey, pk=key_id, partner=partner)
        if request.method == "POST":
            if partner_key_revoke(key=key, actor=_actor(request)):
                self.message_user(request, f"The key {key.lookup_id} is revoked.", messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(partner))
        return _confirm_page(
            request,
            self,
            partner,
            title=f"Revoke key {key.lookup_id} of {partner.name}",
            text="Every request with this key is refused from now on. This cannot be undone.",
            action="Revoke the key",
        )


def _context(request: HttpRequest, model_admin: PartnerAdmin, partner: Partner) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": Partner._meta,
        "partner": partner,
        "change_url": reverse("admin:api_partner_change", args=[partner.pk]),
    }


def _confirm_page(
    request: HttpRequest,
    model_admin: PartnerAdmin,
    partner: Partner,
    *,
    title: str,
    action: str,
    text: str = "",
    form: forms.Form | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        **_context(request, model_admin, partner),
        "title": title,
        "text": text,
        "form": form,
        "error": error,
        "action": action,
    }
    return TemplateResponse(request, "admin/rempart/partner_confirm.html", context, status=status)


def _shown_once(
    request: HttpRequest,
    model_admin: PartnerAdmin,
    partner: Partner,
    *,
    title: str,
    label: str,
    value: str,
    facts: list[tuple[str, str]],
    note: str = "",
) -> HttpResponse:
    context = {
        **_context(request, model_admin, partner),
        "title": title,
        "label": label,
        "value": value,
        "facts": facts,
        "note": note,
    }
    response = TemplateResponse(request, SHOWN_ONCE_TEMPLATE, context)
    response["Cache-Control"] = "no-store"
    return response


def _key_shown(
    request: HttpRequest, model_admin: PartnerAdmin, partner: Partner, issued: KeyIssued, note: str
) -> HttpResponse:
    expiry = issued.key.expires_at
    return _shown_once(
        request,
        model_admin,
        partner,
        title=f"New key for {partner.name}",
        label="API key",
        value=issued.raw,
        facts=[
            ("Key id", issued.key.lookup_id),
            ("Scopes", ", ".join(issued.key.scopes)),
            ("Expires", f"{expiry:%Y-%m-%d %H:%M} UTC" if expiry else "never"),
        ],
        note=note,
    )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The webhook delivery log: read-only (the outbox is written only by api.outbox)."""

    list_display = [
        "webhook_id",
        "partner",
        "event_type",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    ]
    list_filter = ["status", "event_type", "partner"]
    search_fields = ["webhook_id"]
    readonly_fields = (
        "webhook_id",
        "partner",
        "change",
        "event_type",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
    )
    fields = readonly_fields
    list_select_related = ["partner"]


@admin.register(WithdrawalAck)
class WithdrawalAckAdmin(ReadOnlyAdmin):
    """Which partner confirmed which withdrawal, and when (by partner name; read-only)."""

    list_display = ["image", "partner_name", "acknowledged_at"]
    list_filter = ["acknowledged_at"]
    search_fields = ["image__case__reference"]
    readonly_fields = ("image", "partner_id", "partner_name", "acknowledged_at")
    fields = readonly_fields

    @admin.display(description="partner")
    def partner_name(self, obj: WithdrawalAck) -> str:
        partner = Partner.objects.filter(pk=obj.partner_id).first()
        return partner.name if partner else f"partner {obj.partner_id}"


# --- Probing alerts ---------------------------------------------------------------------------


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "open"), ("cleared", "cleared")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ProbingAlert]
    ) -> QuerySet[ProbingAlert]:
        if self.value() == "open":
            return queryset.filter(cleared_at__isnull=True)
        if self.value() == "cleared":
            return queryset.filter(cleared_at__isnull=False)
        return queryset


_ALERT_COLUMNS = (
    "opened_at",
    "partner",
    "key",
    "reason",
    "queries",
    "matched_queries",
    "close_pairs",
    "cleared_by",
    "cleared_at",
)


class ProbingAlertAdmin(ReadOnlyAdmin):
    """Probing alerts: open first; reviewers and superusers clear them (no hash is shown)."""

    list_display = list(_ALERT_COLUMNS)
    list_filter = [OpenFilter, "reason", "partner"]
    list_select_related = ["partner", "key__partner", "cleared_by"]
    ordering = ["cleared_at", "-opened_at"]
    readonly_fields = _ALERT_COLUMNS
    fields = readonly_fields
    actions = ["clear_alerts"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_reviewer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_reviewer(request.user)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        if not is_reviewer(request.user):
            return {}
        return super().get_actions(request)

    @admin.action(description="Clear the selected alerts (the key is no longer slowed down)")
    def clear_alerts(self, request: HttpRequest, queryset: QuerySet[ProbingAlert]) -> None:
        cleared = sum(
            probing_alert_clear(alert=alert, user=request.user)
            for alert in queryset.filter(cleared_at__isnull=True)
        )
        self.message_user(request, f"{cleared} alert(s) cleared.", messages.SUCCESS)


admin.site.register(ProbingAlert, ProbingAlertAdmin)

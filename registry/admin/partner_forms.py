"""The forms of the partner admin: the partner itself (webhook secret write-only) and a key."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from registry.models import ConsentRecord, Partner, PartnerKey
from registry.webhooks.sender import secret_key, webhook_secret_new, webhook_url_refusal

# The expiry proposed for a new key.
DEFAULT_KEY_DAYS = 365


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
            "listed_publicly",
            "public_name",
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

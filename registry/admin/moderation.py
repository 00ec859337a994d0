"""The admin of moderation: the review queue, reviewers' decisions, the allow-list and
probing alerts.

Reviewers (registry.roles) work the review queue: suspend, reinstate, dismiss, accept or reject,
each with a reason asked on a confirmation page (registry.services.review). Superusers also
manage the allow-list (registry.services.allowlist). Probing alerts are cleared by either.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, Prefetch, Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.template.response import TemplateResponse

from registry import roles
from registry.admin.base import ReadOnlyAdmin, ReadOnlyInline
from registry.exceptions import InvalidInput
from registry.matching import counters
from registry.matching.probing import probing_alert_clear
from registry.models import (
    AllowListedHash,
    Feedback,
    ImageHash,
    ProbingAlert,
    RegisteredImage,
    ReviewDecision,
    ReviewQueueImage,
)
from registry.pdq import InvalidHash, truncated
from registry.roles import is_reviewer
from registry.services import allowlist, review


class ReasonForm(forms.Form):
    """The reason a reviewer gives for a decision: required, kept with the decision."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        max_length=review.REASON_MAX,
        help_text="Required. Recorded with the decision and in the audit log; never paste a hash.",
    )


class QueueFilter(admin.SimpleListFilter):
    """Awaiting a decision (disputed and received) by default; suspended on request."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("awaiting", "awaiting a decision"), ("suspended", "suspended")]

    def choices(self, changelist: Any) -> Any:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": (self.value() or "awaiting") == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ReviewQueueImage]
    ) -> QuerySet[ReviewQueueImage]:
        if self.value() == "suspended":
            return queryset.filter(status=RegisteredImage.Status.SUSPENDED)
        return queryset.filter(
            status__in=[RegisteredImage.Status.DISPUTED, RegisteredImage.Status.RECEIVED]
        )


class DecisionInline(ReadOnlyInline):
    model = ReviewDecision
    fk_name = "image"
    readonly_fields = ("created_at", "decision", "from_status", "to_status", "reviewer", "reason")
    fields = readonly_fields
    ordering = ("created_at",)
    show_change_link = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return roles.is_reviewer(request.user)


@admin.register(ReviewQueueImage)
class ReviewQueueAdmin(ReadOnlyAdmin):
    """Disputed images and partners' submitted hashes, oldest first, for reviewers to decide."""

    list_display = [
        "pk",
        "origin",
        "status",
        "queue_reason",
        "queued_since",
        "partners_not_blocked",
        "matches_24h",
        "hash_prefix",
    ]
    list_filter = [QueueFilter, "dispute_reason", "scope"]
    list_display_links = ["pk"]
    readonly_fields = (
        "origin",
        "scope",
        "minor_depicted",
        "quality",
        "status",
        "queue_reason",
        "queued_since",
        "partners_not_blocked",
        "matches_24h",
        "hash_prefix",
        "created_at",
    )
    fields = readonly_fields
    inlines = [DecisionInline]
    actions = ["suspend", "reinstate", "dismiss", "accept", "reject"]
    # An item's own page offers the decisions its status allows (each still asks a reason).
    change_form_template = "admin/rempart/review_item.html"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        image = self.get_object(request, object_id)
        decisions = []
        if image is not None and roles.is_reviewer(request.user):
            decisions = [
                (decision.value, decision.label)
                for decision in ReviewDecision.Decision
                if review.decision_allowed(decision=decision, status=image.status)
            ]
        context = {
            **(extra_context or {}),
            "decisions": decisions,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return super().change_view(request, object_id, form_url, context)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return roles.is_reviewer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return roles.is_reviewer(request.user)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        if not roles.is_reviewer(request.user):
            return {}
        return super().get_actions(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReviewQueueImage]:
        queryset: QuerySet[ReviewQueueImage] = super().get_queryset(request)
        return (
            queryset.select_related("case", "submitted_by_partner")
            # The original hash only: a video's frames (up to 1,801) are not shown here.
            .prefetch_related(
                Prefetch(
                    "hashes", queryset=ImageHash.objects.filter(variant=ImageHash.Variant.ORIGINAL)
                )
            )
            .annotate(
                since=Coalesce("disputed_at", "created_at"),
                not_blocked=Count(
                    "feedback__partner_id",
                    filter=Q(feedback__verdict=Feedback.Verdict.NOT_BLOCKED),
                    distinct=True,
                ),
            )
            .order_by("since", "pk")
        )

    @admin.display(description="from")
    def origin(self, obj: RegisteredImage) -> str:
        if obj.case_id is not None:
            return f"case {obj.case.reference}" if obj.case else f"case {obj.case_id}"
        return f"{obj.submitted_by_partner} (a partner's submission)"

    @admin.display(description="why in the queue")
    def queue_reason(self, obj: RegisteredImage) -> str:
        if obj.status == RegisteredImage.Status.RECEIVED:
            return "submitted by a partner"
        if obj.dispute_reason:
            return str(RegisteredImage.DisputeReason(obj.dispute_reason).label)
        return "-"

    @admin.display(description="in the queue since", ordering="since")
    def queued_since(self, obj: RegisteredImage) -> Any:
        return getattr(obj, "since", None) or review.review_queue_since(obj)

    @admin.display(description="partners: not blocked")
    def partners_not_blocked(self, obj: RegisteredImage) -> int:
        found = getattr(obj, "not_blocked", None)
        if found is None:
            found = review.not_blocked_partner_counts([obj.pk]).get(obj.pk, 0)
        return int(found)

    @admin.display(description="matches, 24 h")
    def matches_24h(self, obj: RegisteredImage) -> int:
        return counters.image_match_counts(image_ids=[obj.pk]).get(obj.pk, 0)

    @admin.display(description="hash (truncated)")
    def hash_prefix(self, obj: RegisteredImage) -> str:
        if obj.kind == RegisteredImage.Kind.VIDEO:
            return f"video MD5 {truncated(bytes(obj.md5))}" if obj.md5 is not None else "video"
        for image_hash in obj.hashes.all():
            if image_hash.variant == ImageHash.Variant.ORIGINAL:
                return truncated(bytes(image_hash.value))
        return "-"

    # --- The actions: each asks for a reason on a confirmation page, then decides --------------

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[ReviewQueueImage], decision: str
    ) -> TemplateResponse | None:
        if not roles.is_reviewer(request.user):
            self.message_user(request, "Only reviewers decide on images.", messages.ERROR)
            return None
        label = ReviewDecision.Decision(decision).label
        images = list(queryset.order_by("pk"))
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            done, refused = 0, []
            for image in images:
                try:
                    review.image_review_decide(
                        image=image,
                        decision=decision,
                        reviewer=request.user,
                        reason=form.cleaned_data["reason"],
                    )
                    done += 1
                except InvalidInput as error:
                    refused.append(f"image {image.pk}: {error.message}")
            if done:
                self.message_user(request, f"{label}: {done} image(s).", messages.SUCCESS)
            for text in refused:
                self.message_user(request, f"Refused, {text}", messages.ERROR)
            return None
        allowed = [
            image
            for image in images
            if review.decision_allowed(decision=decision, status=image.status)
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"{label}: give the reason",
            "opts": self.model._meta,
            "decision": decision,
            "decision_label": label,
            "images": images,
            "allowed": {image.pk for image in allowed},
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "action": request.POST.get("action", decision),
        }
        return TemplateResponse(request, "admin/registry/review_decision_confirm.html", context)

    @admin.action(description="Suspend: stop matching (partners receive a removal)")
    def suspend(
        self, request: HttpRequest, queryset: QuerySet[ReviewQueueImage]
    ) -> TemplateResponse | None:
        return self._decide(request, queryset, ReviewDecision.Decision.SUSPEND)

    @admin.action(description="Reinstate: match again")
    def reinstate(
        self, request: HttpRequest, queryset: QuerySet[ReviewQueueImage]
    ) -> TemplateResponse | None:
        return self._decide(request, queryset, ReviewDecision.Decision.REINSTATE)

    @admin.action(description="Dismiss the dispute")
    def dismiss(
        self, request: HttpRequest, queryset: QuerySet[ReviewQueueImage]
    ) -> TemplateResponse | None:
        return self._decide(request, queryset, ReviewDecision.Decision.DISMISS)

    @admin.action(description="Accept the partner's hash")
    def accept(
        self, request: HttpRequest, queryset: QuerySet[ReviewQueueImage]
    ) -> TemplateResponse | None:
        return self._decide(request, queryset, ReviewDecision.Decision.ACCEPT)

    @admin.action(description="Reject the partner's hash")
    def reject(
        self, request: HttpRequest, queryset: QuerySet[ReviewQueueImage]
    ) -> TemplateResponse | None:
        return self._decide(request, queryset, ReviewDecision.Decision.REJECT)


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(ReadOnlyAdmin):
    """Every reviewer's decision: who, when, why; read-only."""

    list_display = ["created_at", "image", "decision", "from_status", "to_status", "reviewer"]
    list_filter = ["decision", "created_at"]
    list_select_related = ["reviewer", "image"]
    readonly_fields = (
        "created_at",
        "image",
        "decision",
        "from_status",
        "to_status",
        "reviewer",
        "reason",
    )
    fields = readonly_fields


class AllowListedHashForm(forms.ModelForm[AllowListedHash]):
    """A new allow-list entry: the hash as 64 hex digits, and what it is."""

    hash_text = forms.CharField(
        label="hash",
        max_length=64,
        min_length=64,
        help_text="64 hexadecimal digits (PDQ). Blank or degenerate hashes are accepted.",
    )

    class Meta:
        model = AllowListedHash
        fields = ["label"]

    def clean_hash_text(self) -> bytes:
        try:
            return allowlist.parse_allow_list_value(self.cleaned_data["hash_text"])
        except InvalidHash:
            raise forms.ValidationError("A hash is exactly 64 hexadecimal digits.") from None


@admin.register(AllowListedHash)
class AllowListedHashAdmin(admin.ModelAdmin[AllowListedHash]):
    """Superusers add and remove known benign hashes; reviewers read the list."""

    form = AllowListedHashForm
    list_display = ["label", "hash_prefix", "added_by", "created_at"]
    list_select_related = ["added_by"]
    search_fields = ["label"]
    readonly_fields = ("label", "hash_prefix", "added_by", "created_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["hash_text", "label"]
        return list(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.readonly_fields if obj is not None else ()

    @admin.display(description="hash (truncated)")
    def hash_prefix(self, obj: AllowListedHash) -> str:
        return truncated(bytes(obj.value))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return roles.is_reviewer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return roles.is_reviewer(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return roles.is_superuser(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # An entry is added or removed, never edited.

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return roles.is_superuser(request.user)

    def save_model(
        self, request: HttpRequest, obj: AllowListedHash, form: Any, change: bool
    ) -> None:
        created = allowlist.allow_list_add(
            value=form.cleaned_data["hash_text"],
            label=form.cleaned_data["label"],
            added_by_id=int(request.user.pk or 0),
        )
        obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: AllowListedHash) -> None:
        allowlist.allow_list_remove(entry=obj, removed_by_id=int(request.user.pk or 0))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AllowListedHash]) -> None:
        for entry in queryset:
            allowlist.allow_list_remove(entry=entry, removed_by_id=int(request.user.pk or 0))


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

"""The people's pages: home, register, receipt, status (add photos, withdraw) and verify.

Photos never reach these views. The register and add-photos pages hash each photo in the
person's browser (registry/static/registry/hash-worker.js) and send only the eight dihedral
hashes and the quality of each, with the consent fields, as JSON; these views validate them with
registry.pdq and call the services. A case secret travels only in request bodies and in the
pages that answer them, never in a URL, and is never stored: the receipt leaves it out.

JSON calls answer errors as ``{"error": {"code", "message", "details"}}`` with a 4xx status,
the message translated for the person; form pages answer errors in the page, with a 4xx status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry import codes, receipts, selectors, services
from registry.exceptions import CaseAccessDenied, CaseCheckLimited, RequestRefused
from registry.jsonsafe import JsonMalformed, JsonTooDeep, json_loads_bounded
from registry.models import Case, ConsentRecord, ImageHash
from registry.pdq import MIN_QUALITY, DihedralHashes, parse_images
from registry.ratelimits import client_digest, over_limit
from registry.videos import FRAME_QUALITY_MIN, MAX_VIDEO_SECONDS, VideoHashes, parse_videos
from registry.web import receipt_pages, withdrawal
from registry.web.errors import error_message, json_error, json_errors
from registry.web.help import help_resources, platforms_named
from registry.web.idempotency import idempotent_page_call

_LANGUAGES = frozenset(ConsentRecord.Language.values)

# What each protection is called on the pages: the model's own labels.
SCOPE_LABELS: dict[str, Any] = dict(ConsentRecord.Scope.choices)


def _language() -> str:
    language = (get_language() or "en").split("-")[0]
    return language if language in _LANGUAGES else "en"


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """What the registry does and does not do, who checks it, and where to find help."""
    return render(
        request,
        "registry/home.html",
        {
            "help": help_resources(_language()),
            "platforms": platforms_named(_language()),
            "min_quality": MIN_QUALITY,
        },
    )


def _picker_context() -> dict[str, Any]:
    return {
        "max_images": settings.REGISTRY_MAX_IMAGES_PER_REQUEST,
        "min_quality": MIN_QUALITY,
        # The videos' limits (registry.videos), which the page checks before sending anything.
        "max_video_seconds": MAX_VIDEO_SECONDS,
        "max_video_minutes": MAX_VIDEO_SECONDS // 60,
        "max_video_frames_per_case": settings.REGISTRY_MAX_VIDEO_FRAMES_PER_CASE,
        "video_min_quality": FRAME_QUALITY_MIN,
    }


@require_GET
@ensure_csrf_cookie
def register(request: HttpRequest) -> HttpResponse:
    """Choose photos (hashed in the browser), the protection and the attestations; submit."""
    context = {
        **_picker_context(),
        "minor_help": help_resources(_language()).for_minors(),
    }
    return render(request, "registry/register.html", context)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise RequestRefused(415, "unsupported_media_type")
    try:
        body = json_loads_bounded(request.body)
    except JsonTooDeep as error:
        raise RequestRefused(400, "json_too_deep", details={"max_depth": error.max_depth}) from None
    except JsonMalformed:
        raise RequestRefused(400, "malformed_json") from None
    if not isinstance(body, dict):
        raise RequestRefused(400, "invalid_request")
    return body


def _parse_items(body: Mapping[str, Any]) -> tuple[list[DihedralHashes], list[VideoHashes]]:
    """The photos (``images``) and videos (``videos``: registry.videos) of a submission: at
    least one of either, at most REGISTRY_MAX_IMAGES_PER_REQUEST together."""
    images_value = body.get("images", [])
    videos_value = body.get("videos")
    if not isinstance(images_value, list) or not (images_value or videos_value):
        raise RequestRefused(400, "images_required")
    limit = settings.REGISTRY_MAX_IMAGES_PER_REQUEST
    images = parse_images(images_value, limit=limit)
    videos = parse_videos(videos_value, limit=limit - len(images))
    return images, videos


def _attestations(value: object) -> services.Attestations:
    if not isinstance(value, dict):
        raise RequestRefused(400, "attestation_required")
    depicted = value.get("depicted_or_acting_for")
    rights = value.get("rights_to_register")
    minor = value.get("minor_depicted")
    if depicted is not True or rights is not True:
        raise RequestRefused(400, "attestation_required")
    if not isinstance(minor, bool):
        raise RequestRefused(400, "minor_required")
    return services.Attestations(
        depicted_or_acting_for=True, rights_to_register=True, minor_depicted=minor
    )


def _receipt_response(
    request: HttpRequest,
    *,
    case: Case,
    event: receipts.ReceiptEvent,
    images: list[DihedralHashes],
    videos: list[VideoHashes],
    secret: str | None,
    status: int,
    counts: dict[str, int] | None = None,
) -> JsonResponse:
    """The JSON answer of a registration or an addition: the signed receipt, and its page.

    ``counts``, for an addition: the photos ``added``, those ``already`` in the case (sent again,
    not counted twice) and the ``total`` the case now protects.
    """
    receipt = receipts.receipt_sign(
        reference=case.reference,
        event=event,
        issued_at=timezone.now(),
        scope=case.consent.scope,
        # A video is named on the receipt by its file's MD5, which the person can recompute.
        hashes=[image.hashes[0] for image in images]
        + [video.md5 for video in videos if video.md5 is not None],
    )
    context = {
        "receipt": receipt,
        "receipt_text": receipt.text(),
        "scope_label": SCOPE_LABELS.get(receipt.scope, receipt.scope),
        "secret": secret,
        "registered": event == receipts.ReceiptEvent.REGISTERED,
        "minor_depicted": case.consent.minor_depicted,
        "counts": counts,
    }
    body: dict[str, Any] = {
        "case_reference": case.reference,
        "receipt": receipt.text(),
        "receipt_html": receipt_pages.receipt_html(request, context),
        "receipt_html_by_language": receipt_pages.receipt_html_by_language(request, context),
    }
    if secret is not None:
        body["case_secret"] = secret
    return JsonResponse(body, status=status)


@require_POST
@never_cache
@idempotent_page_call
@json_errors
def register_submit(request: HttpRequest) -> HttpResponse:
    """Open a case from the register page's JSON: hashes, qualities and consent fields only."""
    body = _json_body(request)
    scope = body.get("scope")
    if not isinstance(scope, str) or scope not in SCOPE_LABELS:
        raise RequestRefused(400, "scope_invalid")
    attestations = _attestations(body.get("attestations"))
    images, videos = _parse_items(body)
    if over_limit(request, "web.register"):
        raise RequestRefused(429, "rate_limited")
    created = services.case_create(
        scope=str(scope),
        attestations=attestations,
        terms_version=codes.TERMS_VERSION,
        language=_language(),
        images=images,
        videos=videos,
    )
    return _receipt_response(
        request,
        case=created.case,
        event=receipts.ReceiptEvent.REGISTERED,
        images=images,
        videos=videos,
        secret=created.secret,
        status=201,
    )


# --- Status, add photos, withdraw ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Credentials:
    reference: str
    secret: str


def _credentials(data: Mapping[str, Any]) -> _Credentials:
    reference = data.get("case_reference", "")
    secret = data.get("case_secret", "")
    return _Credentials(
        reference=reference if isinstance(reference, str) else "",
        secret=secret if isinstance(secret, str) else "",
    )


def _check(request: HttpRequest, credentials: _Credentials) -> Case:
    """The case of these credentials; raises CaseAccessDenied, or RequestRefused when limited."""
    if over_limit(request, "web.case"):
        raise RequestRefused(429, "rate_limited")
    try:
        return services.case_check_secret_limited(
            reference=credentials.reference,
            secret=credentials.secret,
            client=client_digest(request),
        )
    except CaseCheckLimited as error:
        raise RequestRefused(429, error.code) from None


def _case_page(
    request: HttpRequest,
    template: str,
    case: Case,
    credentials: _Credentials,
    status: int = 200,
    extra: Mapping[str, Any] | None = None,
) -> HttpResponse:
    summary = selectors.case_summary(case=case)
    context = {
        **_picker_context(),
        "summary": summary,
        "scope_label": SCOPE_LABELS.get(summary.scope, summary.scope),
        # Shown back only inside this page's forms, so the next step can check them again.
        "credentials": {
            "reference": case.reference,
            "secret": codes.normalise_secret(credentials.secret) or credentials.secret,
        },
        **(extra or {}),
    }
    return render(request, template, context, status=status)


def _status_form(
    request: HttpRequest, credentials: _Credentials, error: str | None, status: int
) -> HttpResponse:
    return render(
        request,
        "registry/status_form.html",
        {
            "error": error_message(error, {}) if error else None,
            "reference": credentials.reference,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@never_cache
def status(request: HttpRequest) -> HttpResponse:
    """Reference and secret in (a POST form), the case's status out, with its actions."""
    credentials = _credentials(request.POST)
    if request.method == "GET":
        return _status_form(request, _Credentials("", ""), None, 200)
    try:
        case = _check(request, credentials)
    except CaseAccessDenied:
        return _status_form(request, credentials, CaseAccessDenied.code, 403)
    except RequestRefused as error:
        return _status_form(request, credentials, error.code, error.status)
    return _case_page(request, "registry/status.html", case, credentials)


@require_POST
@never_cache
def status_withdraw(request: HttpRequest) -> HttpResponse:
    """Withdraw a case: first a confirmation page, then, once confirmed, the withdrawal."""
    credentials = _credentials(request.POST)
    try:
        case = _check(request, credentials)
    except CaseAccessDenied:
        return _status_form(request, credentials, CaseAccessDenied.code, 403)
    except RequestRefused as error:
        return _status_form(request, credentials, error.code, error.status)
    if request.POST.get("confirm") != "yes":
        return _case_page(request, "registry/withdraw_confirm.html", case, credentials)
    services.case_withdraw(case=case)
    case.refresh_from_db()
    receipt = withdrawal.withdrawal_receipt(case=case)
    return _case_page(
        request,
        "registry/withdrawn.html",
        case,
        credentials,
        extra={
            "receipt": receipt,
            "receipt_text": receipt.text() if receipt else "",
            "retention_days": settings.TOMBSTONE_RETENTION_DAYS,
        },
    )


@require_POST
@never_cache
@idempotent_page_call
@json_errors
def status_add_photos(request: HttpRequest) -> HttpResponse:
    """Add photos to an active case from the status page's JSON (hashes and qualities only)."""
    body = _json_body(request)
    images, videos = _parse_items(body)
    case = _check(request, _credentials(body))
    added = services.case_add_images(case=case, images=images, videos=videos)
    if not added:
        raise RequestRefused(409, "photos_already_in_case")
    added_originals = {
        bytes(value)
        for value in ImageHash.objects.filter(
            image__in=added, variant=ImageHash.Variant.ORIGINAL
        ).values_list("value", flat=True)
    }
    added_md5s = {bytes(image.md5) for image in added if image.md5 is not None}
    return _receipt_response(
        request,
        case=case,
        event=receipts.ReceiptEvent.PHOTOS_ADDED,
        images=[image for image in images if image.hashes[0] in added_originals],
        videos=[video for video in videos if video.md5 in added_md5s],
        secret=None,
        status=201,
        counts={
            "added": len(added),
            "already": len(images) + len(videos) - len(added),
            "total": case.images.count(),
        },
    )


# --- Receipts ------------------------------------------------------------------------------


def _public_key_context() -> dict[str, str]:
    return {
        "public_key": receipts.public_key_base64(),
        "key_id": receipts.key_id(receipts.public_key()),
    }


@require_http_methods(["GET", "POST"])
def receipt_verify(request: HttpRequest) -> HttpResponse:
    """Check a pasted receipt: valid, tampered with, or not a receipt of this service."""
    context: dict[str, Any] = _public_key_context()
    status_code = 200
    if request.method == "POST":
        text = request.POST.get("receipt", "")
        context["text"] = text
        if not text.strip():
            context["empty"] = True
            status_code = 400
        else:
            verification = receipts.receipt_verify(text)
            context["verification"] = verification
            if verification.receipt is not None:
                context["scope_label"] = SCOPE_LABELS.get(
                    verification.receipt.scope, verification.receipt.scope
                )
    return render(request, "registry/verify.html", context, status=status_code)


@require_GET
def receipt_public_key(request: HttpRequest) -> HttpResponse:
    """The receipt signing key's public half, in PEM, for checking receipts offline."""
    response = HttpResponse(receipts.public_key_pem(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="rempart-receipt-key.pem"'
    return response


# --- CSRF ----------------------------------------------------------------------------------


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused CSRF check: JSON for the pages' scripts, a plain page for a form."""
    if request.content_type == "application/json" or request.path.endswith(("/submit", "/photos")):
        return json_error(403, "csrf_failed")
    return render(
        request,
        "registry/problem.html",
        {"message": error_message("csrf_failed", {})},
        status=403,
    )

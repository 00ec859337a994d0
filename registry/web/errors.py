"""Errors of the people's pages: a stable code, a translated message for the person, a status.

The pages' scripts receive ``{"error": {"code", "message", "details"}}`` with a 4xx status (the
same shape as the partner API's); forms show the same messages in the page. The codes are those
of registry.exceptions and registry.pdq, plus a few of the pages' own. A database that cannot
be reached is answered 503 ``service_unavailable`` with Retry-After, by the pages' JSON calls and
(DatabaseUnavailableMiddleware) by every other page, never with a 500.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext, ngettext

from registry.exceptions import (
    CaseAccessDenied,
    CaseCheckLimited,
    CaseWithdrawn,
    RegistryError,
    TooManyImages,
)
from registry.pdq import MIN_QUALITY, HashError, InvalidHash

View = TypeVar("View", bound=Callable[..., HttpResponse])

logger = logging.getLogger(__name__)

# PostgreSQL restarting, failing over or refusing connections. What the request was writing is
# rolled back; the client may retry after RETRY_AFTER_SECONDS.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def error_message(code: str, details: Mapping[str, Any]) -> str:
    """The person-facing, translated message for an error code."""
    if code == TooManyImages.code:
        if "max_images_per_case" in details:
            limit = details["max_images_per_case"]
            return ngettext(
                "A case holds at most %(count)d photo. Register the others as a new case.",
                "A case holds at most %(count)d photos. Register the others as a new case.",
                limit,
            ) % {"count": limit}
        limit = details.get("max_images_per_request", settings.REGISTRY_MAX_IMAGES_PER_REQUEST)
        return ngettext(
            "Send at most %(count)d photo at a time.",
            "Send at most %(count)d photos at a time.",
            limit,
        ) % {"count": limit}
    if code == HashError.QUALITY_TOO_LOW:
        return gettext(
            "A photo is too plain or too small to be protected (quality below %(minimum)d). "
            "Remove it and try again."
        ) % {"minimum": MIN_QUALITY}
    if code == HashError.ALLOW_LISTED:
        return gettext(
            "A photo looks like a blank image or a picture shared very widely, which the "
            "registry cannot protect without blocking other people's pictures. Remove it and "
            "try again."
        )
    if code in HashError.__members__.values():
        return gettext(
            "The fingerprint of a photo could not be checked. Remove the photo, add it again and "
            "retry."
        )
    messages: dict[str, str] = {
        "malformed_json": gettext(
            "The page sent something the registry could not read. Reload the page and try again."
        ),
        "invalid_request": gettext(
            "The page sent something the registry could not read. Reload the page and try again."
        ),
        "unsupported_media_type": gettext(
            "The page sent something the registry could not read. Reload the page and try again."
        ),
        "images_required": gettext("Add at least one photo."),
        # Videos (registry.videos); the page checks most of these before sending anything.
        "videos_invalid": gettext(
            "The page sent a video the registry could not read. Reload the page and try again."
        ),
        "video_invalid": gettext(
            "The page sent a video the registry could not read. Reload the page and try again."
        ),
        "video_frames_required": gettext(
            "The page sent a video the registry could not read. Reload the page and try again."
        ),
        "video_frame_invalid": gettext(
            "The page sent a video the registry could not read. Reload the page and try again."
        ),
        "video_too_long": gettext(
            "A video is longer than %(minutes)d minutes, the longest the registry protects. "
            "Remove it, or register a shorter cut of it."
        )
        % {"minutes": int(details.get("max_seconds", 1800)) // 60},
        "video_too_many_frames": gettext(
            "A video is longer than %(minutes)d minutes, the longest the registry protects. "
            "Remove it, or register a shorter cut of it."
        )
        % {"minutes": int(details.get("max_frames", 1801)) // 60},
        "video_quality_too_low": gettext(
            "A video is too dark or too plain throughout to be protected: no moment of it has "
            "enough detail. Remove it and try again."
        ),
        "too_many_frames": gettext(
            "These videos are too long together for one case (%(minutes)d minutes at most). "
            "Remove one, or register it as a new case."
        )
        % {"minutes": int(details.get("max_frames_per_case", 3600)) // 60},
        "scope_invalid": gettext("Choose the protection you want."),
        "attestation_required": gettext(
            "Please confirm both statements: that you are the person in the photos or act for "
            "them, and that the photos are yours to register."
        ),
        "minor_required": gettext("Please say whether the person in the photos was under 18."),
        CaseAccessDenied.code: gettext(
            "No case matches this reference and secret. Check both and try again."
        ),
        CaseWithdrawn.code: gettext(
            "This case was withdrawn, so photos cannot be added to it. Register them as a new "
            "case instead."
        ),
        "photos_already_in_case": gettext(
            "These photos are already protected by your case: nothing was added."
        ),
        "rate_limited": gettext("Too many attempts in a short time. Wait a minute and try again."),
        "service_unavailable": gettext(
            "The registry is briefly unavailable. Wait a few seconds and try again."
        ),
        CaseCheckLimited.code: gettext(
            "Too many wrong attempts for this case. Wait an hour, then try again."
        ),
        "csrf_failed": gettext(
            "Your session has expired, or your browser blocked this site's cookie. Reload the "
            "page and try again. Nothing was sent."
        ),
        "idempotency_key_invalid": gettext(
            "The page sent something the registry could not read. Reload the page and try again."
        ),
        "idempotency_key_reused": gettext(
            "This attempt was already sent with other photos or choices. Reload the page and "
            "try again: nothing was registered twice."
        ),
    }
    return messages.get(
        code, gettext("The registry could not do this. Reload the page and try again.")
    )


def json_error(status: int, code: str, details: dict[str, Any] | None = None) -> JsonResponse:
    details = details or {}
    message = error_message(code, details)
    return JsonResponse(
        {"error": {"code": code, "message": message, "details": details}}, status=status
    )


def json_errors(view: View) -> View:
    """Answer every error a request can cause as a 4xx JSON body (never a 500)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except (RegistryError, InvalidHash) as error:
            # Each domain error carries its status and code; the message is the page's own.
            return json_error(error.status, str(error.code), dict(error.details))
        except DATABASE_UNAVAILABLE as error:
            return service_unavailable(request, error)

    return wrapped  # type: ignore[return-value]


def service_unavailable(request: HttpRequest, error: Exception) -> HttpResponse:
    """503 with Retry-After: the error body for scripts and API clients, a page for a person."""
    logger.warning("database unavailable (%s): answered 503", type(error).__name__)
    wants_json = (
        request.content_type == "application/json"
        or request.path.startswith(("/api/", "/v1/", "/ready", "/health"))
        or request.path.endswith(("/submit", "/photos"))
    )
    response: HttpResponse
    if wants_json:
        response = json_error(503, "service_unavailable")
    else:
        message = error_message("service_unavailable", {})
        response = render(request, "registry/problem.html", {"message": message}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Answer a view that could not reach the database with 503 and Retry-After, never a 500.

    Views of the partner API answer it themselves (api.errors); this covers the pages, the
    probes and anything else, so a PostgreSQL restart never shows Django's bare error page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_UNAVAILABLE):
            return service_unavailable(request, exception)
        return None

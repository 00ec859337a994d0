"""Errors of the people's pages: a stable code, a translated message for the person, a status.

The pages' scripts receive ``{"error": {"code", "message", "details"}}`` with a 4xx status (the
same shape as the partner API's); forms show the same messages in the page. The codes are those
of registry.exceptions and registry.pdq, plus a few of the pages' own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext, ngettext

from registry.exceptions import (
    CaseAccessDenied,
    CaseCheckLimited,
    CaseWithdrawn,
    InvalidInput,
    RegistryError,
    TooManyImages,
)
from registry.pdq import MIN_QUALITY, HashError, InvalidHash

View = TypeVar("View", bound=Callable[..., HttpResponse])


class RequestError(Exception):
    """A request the person's page should not have sent: answered as a 4xx JSON error."""

    def __init__(self, status: int, code: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.details = details or {}


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
        "rate_limited": gettext("Too many attempts in a short time. Wait a minute and try again."),
        CaseCheckLimited.code: gettext(
            "Too many wrong attempts for this case. Wait an hour, then try again."
        ),
        "csrf_failed": gettext(
            "Your session has expired, or your browser blocked this site's cookie. Reload the "
            "page and try again. Nothing was sent."
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


DOMAIN_STATUS: list[tuple[type[RegistryError], int]] = [
    (CaseAccessDenied, 403),
    (CaseWithdrawn, 409),
    (TooManyImages, 413),
    (InvalidInput, 400),
]


def json_errors(view: View) -> View:
    """Answer every error a request can cause as a 4xx JSON body (never a 500)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except RequestError as error:
            return json_error(error.status, error.code, error.details)
        except InvalidHash as error:
            details: dict[str, Any] = dict(getattr(error, "location", {}))
            if error.index is not None:
                details["index"] = error.index
            return json_error(422, str(error.code), details)
        except RegistryError as error:
            status = next((s for kind, s in DOMAIN_STATUS if isinstance(error, kind)), 400)
            return json_error(status, error.code, error.details)

    return wrapped  # type: ignore[return-value]

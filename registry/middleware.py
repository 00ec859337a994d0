"""Request guards that apply to every route."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class BodySizeLimitMiddleware:
    """Refuse, with 413, a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE before anything reads it.

    Django applies that limit to form bodies only; JSON parsers read the stream directly. Bodies
    here carry hashes, never images, so a large one is a mistake or an attack.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            return JsonResponse(
                {
                    "error": {
                        "code": "body_too_large",
                        "message": "The request body is too large.",
                        "details": {"max_bytes": limit},
                    }
                },
                status=413,
            )
        return self.get_response(request)


# Powerful browser features no page of the registry uses: denied to every page and every frame.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "camera",
        "microphone",
        "geolocation",
        "payment",
        "usb",
        "display-capture",
        "interest-cohort",
    )
)


class PermissionsPolicyMiddleware:
    """Set Permissions-Policy on every answer (Django has no setting for it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response

"""One error body everywhere: ``{"error": {"code", "message", "details"}}``.

Codes are stable; messages are for people; details locate the problem (which field, which hash).
Every failure a client can cause ends here as a 4xx, never a 500; a database that cannot be
reached (restarting, failing over) as a 503 ``service_unavailable`` with Retry-After.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf
from rest_framework.response import Response

from registry.exceptions import RateLimited, RegistryError
from registry.pdq import InvalidHash
from registry.web.errors import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)


class ApiError(drf.APIException):
    """An API error with a stable code, raised by views and authentication."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status
        self.code = code
        self.message = message
        self.details = details or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


_DRF_CODES: dict[type[drf.APIException], tuple[str, str]] = {
    drf.ParseError: ("malformed_json", "The body is not valid JSON."),
    drf.NotAuthenticated: ("key_required", "Send your API key as 'Authorization: Bearer <key>'."),
    drf.AuthenticationFailed: ("key_invalid", "This API key is unknown, revoked or expired."),
    drf.PermissionDenied: ("scope_missing", "This API key lacks the scope this call needs."),
    drf.NotFound: ("not_found", "No such resource."),
    drf.MethodNotAllowed: ("method_not_allowed", "This method is not allowed here."),
    drf.UnsupportedMediaType: ("unsupported_media_type", "Send 'Content-Type: application/json'."),
    drf.NotAcceptable: ("not_acceptable", "This resource answers in JSON only."),
}


def _details_of_validation(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {"fields": {key: _flatten(value) for key, value in detail.items()}}
    return {"fields": {"non_field_errors": _flatten(detail)}}


def _flatten(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _flatten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_flatten(item) for item in value]
    return str(value)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, rewritten to the registry's error body."""
    if isinstance(exc, Ratelimited):  # django-ratelimit's refusal
        exc = RateLimited(retry_after=60)
    if isinstance(exc, (RegistryError, InvalidHash)):
        # Each domain error carries its status and code (registry.exceptions, registry.pdq).
        response = Response(error_body(exc.code, exc.message, dict(exc.details)), status=exc.status)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            response["Retry-After"] = str(retry_after)
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("body_too_large", "The request body is too large."), status=413)
    if isinstance(exc, ApiError):
        return _with_auth_header(
            Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
        )
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    if isinstance(exc, drf.ValidationError):
        return Response(
            error_body(
                "invalid_request",
                "The request does not have the expected shape.",
                _details_of_validation(exc.detail),
            ),
            status=400,
        )
    if isinstance(exc, drf.Throttled):
        response = Response(error_body("rate_limited", "Too many requests: slow down."), status=429)
        response["Retry-After"] = str(int(getattr(exc, "wait", None) or 60))
        return response
    if isinstance(exc, drf.APIException):
        code, message = next(
            (pair for kind, pair in _DRF_CODES.items() if isinstance(exc, kind)),
            ("request_refused", str(exc.detail)),
        )
        return _with_auth_header(Response(error_body(code, message), status=exc.status_code))
    if isinstance(exc, DATABASE_UNAVAILABLE):
        # PostgreSQL restarting or failing over: what the request wrote was rolled back, and
        # the client may retry (with the same Idempotency-Key if it sent one).
        logger.warning("database unavailable (%s): answered 503", type(exc).__name__)
        response = Response(
            error_body(
                "service_unavailable",
                "The registry is briefly unavailable: retry in a few seconds, with the same "
                "Idempotency-Key if you sent one.",
            ),
            status=503,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return None


def _with_auth_header(response: Response) -> Response:
    if response.status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="rempart"'
    return response


def json_not_found(request: HttpRequest) -> JsonResponse:
    """Any unknown path under /api/: the error body, not an HTML page."""
    return JsonResponse(error_body("not_found", "No such resource."), status=404)

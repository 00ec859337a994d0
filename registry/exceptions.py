"""Errors of the registry's domain, each with a stable code and the HTTP status it answers.

The partner API (api.errors) and the people's pages (registry.web.errors) render the same
error, with its status, as ``{"error": {"code", "message", "details"}}``; the pages translate
the message. Hash errors are registry.pdq.InvalidHash, which carries a code and status too.
No Django import: the partner client shares these codes.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """Base of every domain error: ``code`` is stable and machine-readable."""

    code = "registry_error"
    status = 400
    default_message = "The request could not be carried out."
    # Seconds after which a refused request may be retried (Retry-After), where that is known.
    retry_after: int | None = None

    def __init__(
        self, message: str | None = None, *, details: dict[str, Any] | None = None
    ) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class InvalidInput(RegistryError):  # noqa: N818 - the domain's word
    """Input that is well-formed but not acceptable (a missing attestation, an unknown scope)."""

    code = "invalid_input"
    default_message = "The request is not valid."

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.code = code


class CaseAccessDenied(RegistryError):  # noqa: N818
    """Unknown reference or wrong secret: deliberately indistinguishable."""

    code = "case_access_denied"
    status = 403
    default_message = "No case matches this reference and secret."


class CaseCheckLimited(RegistryError):  # noqa: N818
    """Too many failed secret checks from this client, or from it on this reference."""

    code = "case_check_limited"
    status = 429
    default_message = "Too many failed attempts for this case or from this client; retry later."

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(details={"retry_after": retry_after})
        self.retry_after = retry_after


class CaseWithdrawn(RegistryError):  # noqa: N818
    """The case was withdrawn: nothing can be added to it."""

    code = "case_withdrawn"
    status = 409
    default_message = "This case was withdrawn; register the photos again as a new case."


class TooManyImages(RegistryError):  # noqa: N818
    """A request or a case would exceed the number of images allowed."""

    code = "too_many_images"
    status = 413
    default_message = "Too many photos in one request or one case."


class RateLimited(RegistryError):  # noqa: N818 - named for what the client sees
    """Too many requests from this client or this partner in the current window."""

    code = "rate_limited"
    status = 429
    default_message = "Too many requests: slow down."

    def __init__(self, *, retry_after: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(details=details)
        self.retry_after = max(1, retry_after)


class RequestRefused(RegistryError):  # noqa: N818
    """A request refused for a reason of its own, with its code and status (a malformed body,
    an idempotency key used twice): what a caller should not have sent."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.code = code

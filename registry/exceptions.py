"""Errors of the registry's domain, each with a stable code that the API and pages show.

No Django import: the partner client shares these codes.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """Base of every domain error: ``code`` is stable and machine-readable."""

    code = "registry_error"
    default_message = "The request could not be carried out."

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
    default_message = "No case matches this reference and secret."


class CaseCheckLimited(RegistryError):  # noqa: N818
    """Too many failed secret checks from this client, or from it on this reference."""

    code = "case_check_limited"
    default_message = "Too many failed attempts for this case or from this client; retry later."

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(details={"retry_after": retry_after})
        self.retry_after = retry_after


class CaseWithdrawn(RegistryError):  # noqa: N818
    """The case was withdrawn: nothing can be added to it."""

    code = "case_withdrawn"
    default_message = "This case was withdrawn; register the photos again as a new case."


class TooManyImages(RegistryError):  # noqa: N818
    """A request or a case would exceed the number of images allowed."""

    code = "too_many_images"
    default_message = "Too many photos in one request or one case."

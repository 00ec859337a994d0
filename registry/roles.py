"""The two staff roles of the admin.

Reviewers are staff in the ``reviewers`` group: they work the review queue and read the records.
Superusers also manage partners, keys and settings. Everything else in the admin follows from
these two checks.
"""

from __future__ import annotations

from typing import Any

REVIEWERS = "reviewers"


def is_reviewer(user: Any) -> bool:
    """Whether ``user`` may decide on disputed images (superusers may too)."""
    if not (getattr(user, "is_active", False) and getattr(user, "is_staff", False)):
        return False
    if user.is_superuser:
        return True
    return bool(user.groups.filter(name=REVIEWERS).exists())


def is_superuser(user: Any) -> bool:
    """Whether ``user`` may manage partners, keys and settings."""
    return bool(
        getattr(user, "is_active", False)
        and getattr(user, "is_staff", False)
        and getattr(user, "is_superuser", False)
    )

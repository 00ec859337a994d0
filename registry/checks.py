"""System checks of the registry's own settings, run by ``manage.py check --deploy``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security, deploy=True)
def withdrawal_journal_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Warn when withdrawals are journalled nowhere: a restored backup would undo them."""
    if settings.WITHDRAWAL_JOURNAL:
        return []
    return [
        Warning(
            "WITHDRAWAL_JOURNAL is not set: restoring a backup would undo the withdrawals made "
            "after it.",
            hint="Set WITHDRAWAL_JOURNAL to a file kept apart from the database "
            "(docs/operators.md, Backups).",
            id="registry.W001",
        )
    ]


# The operator settings the legal notice and the privacy notice cannot do without.
OPERATOR_SETTINGS = (
    "OPERATOR_NAME",
    "OPERATOR_ADDRESS",
    "OPERATOR_CONTACT_EMAIL",
    "OPERATOR_PUBLICATION_DIRECTOR",
    "OPERATOR_HOST",
)


@register(Tags.security, deploy=True)
def operator_settings_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Warn while the legal notice and the privacy notice do not say who runs the registry."""
    missing = [name for name in OPERATOR_SETTINGS if not getattr(settings, name)]
    if not missing:
        return []
    return [
        Warning(
            f"{', '.join(missing)} not set: the legal notice and the privacy notice say they "
            "must be filled in, and do not name who runs the registry.",
            hint="Set them in the environment (deploy/env.example, docs/operators.md).",
            id="registry.W002",
        )
    ]

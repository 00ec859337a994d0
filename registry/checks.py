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

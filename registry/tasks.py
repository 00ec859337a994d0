"""Celery tasks of the registry's domain: thin wrappers, run by Celery beat (CELERY_BEAT_SCHEDULE).

The partner API's tasks (webhooks, and the retention of its own records) are in api.tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task

from registry import retention


def _task(function: Callable[[], None]) -> Any:
    return shared_task(ignore_result=True)(function)


@_task
def retention_purge_task() -> None:
    """Delete the registry's records whose retention period is over (registry.retention)."""
    retention.registry_records_purge()

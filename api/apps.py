"""Django application of the partner-facing API: partners, keys, authentication."""

from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Partner API"

    def ready(self) -> None:
        # Registers the webhook tasks in every process, not only in workers (which discover
        # them): registry enqueues them by name, and without a broker they run inline.
        from api import tasks  # noqa: F401

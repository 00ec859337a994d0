"""Django application of the registry's domain."""

from __future__ import annotations

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        # Load the Celery app whenever Django is set up, so shared tasks bind to its settings,
        # and register the deploy checks.
        from registry import celery, checks  # noqa: F401

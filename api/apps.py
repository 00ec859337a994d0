"""Django application of the partner-facing HTTP adapter.

It has no models of its own: partners are domain (registry.models.partners). Its migrations
stay, because they created the partner tables that registry now models under their old names.
"""

from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Partner API"

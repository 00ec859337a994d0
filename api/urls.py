"""Routes of the partner API (under /api/v1/) and of the StopNCII-compatible feed (/v1/)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []

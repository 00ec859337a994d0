"""Routes of the partner API (under /api/v1/) and its OpenAPI schema and docs."""

from __future__ import annotations

from csp.decorators import csp_update
from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from api import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/match", views.MatchApi.as_view(), name="api-match"),
    path("api/v1/cases", views.CaseCreateApi.as_view(), name="api-case-create"),
    path("api/v1/cases/status", views.CaseStatusApi.as_view(), name="api-case-status"),
    path("api/v1/cases/withdraw", views.CaseWithdrawApi.as_view(), name="api-case-withdraw"),
    path("api/v1/cases/images", views.CaseImagesApi.as_view(), name="api-case-images"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        # Redoc styles itself inline and renders in a blob worker; its scripts are still ours.
        csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]})(
            SpectacularRedocView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
]

"""Routes of the partner API (under /api/v1/) and its OpenAPI schema and docs."""

from __future__ import annotations

from csp.decorators import csp_update
from django.urls import URLPattern, URLResolver, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from api.errors import json_not_found
from api.stopncii import views as stopncii
from api.views import cases, feedback, match, sync

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/match", match.MatchApi.as_view(), name="api-match"),
    path("api/v1/cases", cases.CaseCreateApi.as_view(), name="api-case-create"),
    path("api/v1/cases/status", cases.CaseStatusApi.as_view(), name="api-case-status"),
    path("api/v1/cases/withdraw", cases.CaseWithdrawApi.as_view(), name="api-case-withdraw"),
    path("api/v1/cases/images", cases.CaseImagesApi.as_view(), name="api-case-images"),
    path("api/v1/withdrawals/ack", sync.WithdrawalAckApi.as_view(), name="api-withdrawal-ack"),
    path("api/v1/hashes/changes", sync.HashChangesApi.as_view(), name="api-hash-changes"),
    path("api/v1/feedback", feedback.FeedbackCreateApi.as_view(), name="api-feedback"),
    # The StopNCII.org wire format (api/stopncii/): the client's names, case-sensitive.
    path("v1/FetchHashes", stopncii.StopNCIIFetchHashesApi.as_view(), name="stopncii-fetch"),
    path(
        "v1/SubmitFeedback", stopncii.StopNCIISubmitFeedbackApi.as_view(), name="stopncii-feedback"
    ),
    path("v1/SubmitHashes", stopncii.StopNCIISubmitHashesApi.as_view(), name="stopncii-submit"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        # Redoc styles itself inline and renders in a blob worker; its scripts are still ours.
        csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]})(
            SpectacularRedocView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
    # Last: any other path under /api/ or /v1/ answers the error body, not an HTML page.
    re_path(r"^(?:api|v1)/", json_not_found),
]

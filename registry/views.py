"""The individuals' web pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """What the registry does and does not do, in plain words."""
    return render(request, "registry/home.html")


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. (Readiness, with the index, is /ready.)"""
    return JsonResponse({"status": "ok"})

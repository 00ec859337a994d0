"""URL routes of the registry: the people's pages, the partner API, the admin."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from registry.web import health, notices, transparency
from registry.web import views as web

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path(settings.ADMIN_PATH, admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("api.urls")),
    # The people's pages (registry/web/views.py).
    path("", web.home, name="home"),
    path("register", web.register, name="register"),
    path("register/submit", web.register_submit, name="register-submit"),
    path("status", web.status, name="status"),
    path("status/photos", web.status_add_photos, name="status-add-photos"),
    path("status/withdraw", web.status_withdraw, name="status-withdraw"),
    path("receipt/verify", web.receipt_verify, name="receipt-verify"),
    path("receipt/public-key.pem", web.receipt_public_key, name="receipt-public-key"),
    path("transparency", transparency.transparency, name="transparency"),
    path("transparency.csv", transparency.transparency_csv, name="transparency-csv"),
    path("legal", notices.legal_notice, name="legal"),
    path("privacy", notices.privacy_notice, name="privacy"),
    path("leave", notices.quick_exit, name="quick-exit"),
]

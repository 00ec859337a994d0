"""The Celery application: configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os

from celery import Celery

from registry.startup import settings_load_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
settings_load_or_exit("celery")

app = Celery("registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

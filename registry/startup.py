"""Start-up of every process (manage.py, gunicorn's wsgi, Celery): the settings or one line.

A missing or malformed setting raises ImproperlyConfigured while the settings load. Each entry
point loads them first through ``settings_load_or_exit``, so that an operator sees one line
naming the variable, not a traceback through Django's internals.
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def settings_load_or_exit(program: str) -> None:
    """Load the settings; on a configuration error print one line to stderr and exit 1."""
    try:
        settings.INSTALLED_APPS  # noqa: B018 - the first access loads the settings
    except ImproperlyConfigured as error:
        print(
            f"{program}: configuration error: {error} "
            "(see deploy/env.example; for development, `make run` writes a .env)",
            file=sys.stderr,
        )
        raise SystemExit(1) from None

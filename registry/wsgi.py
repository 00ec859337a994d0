"""WSGI entry point (gunicorn registry.wsgi): Django, behind the lean routes (api/lean.py)."""

from __future__ import annotations

import atexit
import os

from django.core.wsgi import get_wsgi_application

from registry.startup import settings_load_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
settings_load_or_exit("registry.wsgi")

django_application = get_wsgi_application()

from api.lean import LeanRoutes  # noqa: E402 - needs the application set up first

application = LeanRoutes(django_application)

from django.conf import settings  # noqa: E402 - needs the application set up first

from registry.matching.follower import get_matcher  # noqa: E402
from registry.matching.usage import match_call_recorder  # noqa: E402

if settings.INDEX_AUTOSTART:
    # Start loading the match index now, not on the first request, and write match call records
    # in batches. Under gunicorn --preload the master loads the index and forked workers share
    # its memory; gunicorn.conf.py's post_fork starts both in each worker instead.
    get_matcher().start()
    match_call_recorder.start()
    atexit.register(match_call_recorder.stop)

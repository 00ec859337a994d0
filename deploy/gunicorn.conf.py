"""gunicorn settings for the registry's web processes (``gunicorn -c deploy/gunicorn.conf.py``).

The match index is loaded once, in the master, before the workers fork (``preload_app``): the
workers share its memory copy-on-write, and each then follows the change sequence on its own
thread. The master starts no thread of its own, so no lock is held across a fork.
"""

from __future__ import annotations

import os
from typing import Any

# The master loads the index itself (when_ready); the WSGI module must not start a follower.
os.environ["INDEX_AUTOSTART"] = "0"

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# On 2 cores, 3 or 4 workers of 2 threads served a third more match calls than 2 workers of 4
# in the load test (make loadtest): a thread waiting on PostgreSQL or Redis lets another run,
# and more threads in one process mostly wait for its interpreter lock.
workers = int(os.environ.get("WEB_CONCURRENCY") or "3")
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or "2")
preload_app = True
timeout = 30
graceful_timeout = 20
keepalive = 5
# Bounded request lines and headers: bodies carry hashes only.
limit_request_line = 4094
limit_request_fields = 50
# No client address in the access log: no raw IP address is stored, even in logs. Nor a query
# string, a hash, a key or a secret: the logger class writes the request line with the query
# replaced by "?[query]" and any long token in the path redacted (registry/access_log.py).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
access_log_format = '"%(r)s" %(s)s %(b)s %(M)sms'
logger_class = "registry.access_log.AccessLogger"
errorlog = "-"
# gunicorn's control socket defaults to one path per user, which every gunicorn of that user
# would share; the registry is managed by signals (systemctl reload sends SIGHUP) instead.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def when_ready(server: Any) -> None:
    """Prepare the master before it forks (registry.serve.before_fork: the match index and the
    compiled passes loaded, its database connections closed, what it holds frozen)."""
    from registry.serve import before_fork  # The app is loaded by now.

    before_fork()


def post_fork(server: Any, worker: Any) -> None:
    """Each worker follows the change sequence from where the master's index stands, and writes
    its match call records in batches (registry.matching.usage.MatchCallRecorder)."""
    from registry.matching.follower import get_matcher
    from registry.matching.usage import match_call_recorder

    get_matcher().start()
    match_call_recorder.start()


def worker_exit(server: Any, worker: Any) -> None:
    """Write the match call records still waiting before the worker exits."""
    from registry.matching.usage import match_call_recorder

    match_call_recorder.stop()


def on_reload(server: Any) -> None:
    """On SIGHUP (systemctl reload), reload the index in the master before it forks new workers.

    Workers that merged their delta hold private copies of the index; reloading re-forks them
    from one fresh, shared copy.
    """
    from registry.serve import before_fork

    before_fork()

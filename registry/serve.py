"""The registry's web server: granian, with the match index loaded once before the workers fork.

Run: ``python -m registry.serve`` (deploy/systemd/rempart-web.service, deploy/Dockerfile). It
serves ``registry.serve:application``: the WSGI application of registry/wsgi.py (the lean
routes in front of Django) behind the access log below.

Why granian: its HTTP server is compiled (Rust), where gunicorn parses and writes every request
in Python. On the load test's 2 cores (make loadtest, 1,000,000 hashes) gunicorn spent about
0.7 ms of CPU a request before the registry's own work, granian about 0.17; in one run the same
application served 2.7 times the single-hash match calls and 3.8 times the bare endpoint behind
granian. deploy/gunicorn.conf.py still runs the same application for operators who keep it.

What gunicorn.conf.py did, done here:

* **One index for every worker.** This process loads the match index (from PostgreSQL, or by
  mapping the checkpoint), closes its database connections, and only then starts granian,
  whose workers are forked (the start method on Linux): they share the index's pages
  copy-on-write. Each worker, just after the fork, starts its own follower of the change
  sequence, its own writer of match call records and of the access log (granian's workers are
  multiprocessing processes: ``multiprocessing.util.register_after_fork``), and writes what is
  still waiting when it stops (``multiprocessing.util.Finalize``: a worker leaves through
  ``os._exit``, where ``atexit`` handlers do not run).
* **No full collection over shared pages.** What this process made before the fork is frozen
  (``gc.freeze``, before_fork below), so a worker's collector neither stops it for 80 ms and
  more nor copies those pages (57 MB a worker).
* **Reload.** SIGHUP (``systemctl reload``): this process reloads the index, then granian
  replaces its workers one by one with fresh forks of it (``on_reload``).
* **The access log** holds no client address, query string, hash, key or secret: granian's own
  access log (which has the address) stays off, and each worker writes the line gunicorn's
  format gave, ``"POST /api/v1/match HTTP/1.1" 200 123 1ms``, off the request path
  (registry.access_log.AccessLog).

Settings, from the environment (deploy/env.example): ``WEB_BIND`` (``127.0.0.1:8000``; the
older ``GUNICORN_BIND`` is read when it is not set), ``WEB_CONCURRENCY`` (workers; one a core by
default: on 2 cores, two workers served as many match calls as six, make loadtest),
``WEB_THREADS`` (threads a worker runs the application on, 2; ``GUNICORN_THREADS`` likewise),
``WEB_ACCESS_LOG`` (``-``: standard output, the default; a file path; empty: none) and
``LOG_LEVEL``.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing.util
import os

if __name__ == "__main__":
    # This process loads the index itself (main); registry/wsgi.py must not start a follower.
    os.environ["INDEX_AUTOSTART"] = "0"

from registry.access_log import AccessLog, access_log_start, access_log_stop
from registry.wsgi import application as registry_application

logger = logging.getLogger("registry.serve")  # also when run as __main__

# Graceful stop: a worker finishes its requests within this many seconds, as under gunicorn.
GRACEFUL_SECONDS = 20

application = AccessLog(registry_application)


def _setting(name: str, older: str | None, default: str) -> str:
    value = os.environ.get(name)
    if value is None and older is not None:
        value = os.environ.get(older)
    return default if value is None or value == "" else value


class _Worker:
    """What each worker starts after the fork and stops on its way out."""

    def started(self) -> None:
        from registry.matching.follower import get_matcher
        from registry.matching.usage import match_call_recorder

        get_matcher().start()
        match_call_recorder.start()
        access_log_start(_setting("WEB_ACCESS_LOG", None, "-"))
        multiprocessing.util.Finalize(self, self.stopping, exitpriority=10)

    def stopping(self) -> None:
        from registry.matching.usage import match_call_recorder

        match_call_recorder.stop()
        access_log_stop()


_worker = _Worker()


def before_fork() -> None:
    """What this process does before it forks workers, at start and on reload.

    It loads the match index (answering one query with it, and loading the passes a merge of
    its delta uses: Matcher.load) and the probing watch's compiled passes, so that no worker's
    first calls, nor its first merge, wait for them; closes its database connections (a
    forked worker must not share them); then freezes what it holds (``gc.freeze``).

    Frozen objects are out of the cyclic collector's reach. A worker's full collection walked
    the 150,000 and more objects of Django and the application with both its threads stopped
    (80 to 115 ms in make loadtest) and wrote to every page holding them, which the workers
    otherwise share copy-on-write: one collection in a freshly forked worker copied 57 MB of
    the main process's memory. It now walks what the worker made itself: about 0.1 ms, and no
    shared page copied. (The load test's rates and p99 did not move: a worker collects in full
    about once in a scenario.)
    """
    from django.db import connections

    from registry.matching import probing
    from registry.matching.follower import get_matcher

    get_matcher().load()
    probing.kernels_load()
    connections.close_all()
    gc.collect()
    gc.freeze()
    logger.info("%d objects frozen before the workers fork", gc.get_freeze_count())


def main() -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    host, _, port = _setting("WEB_BIND", "GUNICORN_BIND", "127.0.0.1:8000").rpartition(":")
    before_fork()
    multiprocessing.util.register_after_fork(_worker, _Worker.started)
    server = Server(
        "registry.serve:application",
        address=host.strip("[]") or "127.0.0.1",
        port=int(port),
        interface=Interfaces.WSGI,
        workers=int(_setting("WEB_CONCURRENCY", None, str(len(os.sched_getaffinity(0))))),
        blocking_threads=int(_setting("WEB_THREADS", "GUNICORN_THREADS", "2")),
        http=HTTPModes.http1,
        websockets=False,
        log_level=LogLevels(_setting("LOG_LEVEL", None, "info").lower()),
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_SECONDS,
    )
    server.on_reload(before_fork)
    server.serve()


if __name__ == "__main__":
    main()

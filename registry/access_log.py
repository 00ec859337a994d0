"""The access log without query strings, hashes, keys or secrets: registry/serve.py's, and
gunicorn's (deploy/gunicorn.conf.py).

A server writes the request line as the client sent it: ``POST /api/v1/match?hash=<hex>``, a
key put in a URL, a cursor, all reach the log, even when the registry refuses the request.
Both loggers here write the path without its query (``?[query]`` says there was one), with any
hash, secret, address or long token in the path replaced, and no header or environment value
at all, whatever the format asks for.
"""

from __future__ import annotations

import logging
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from registry.redaction import redact

logger = logging.getLogger(__name__)

# A run of 16 or more letters, digits and token punctuation: a key, a hash in any encoding, a
# cursor. The registry's routes have none (their longest word is 15 characters); a static path
# such as drf_spectacular_sidecar is redacted too, at no cost (nginx serves those).
_TOKEN = re.compile(r"[A-Za-z0-9_=+%-]{16,}")
QUERY_PLACEHOLDER = "[query]"


def logged_path(path: str) -> str:
    """``path`` as the access log may show it."""
    return _TOKEN.sub("[redacted]", redact(path))


class AccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, its access log atoms stripped of anything a client chose to send."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        path = logged_path(environ.get("PATH_INFO") or "/")
        query = QUERY_PLACEHOLDER if environ.get("QUERY_STRING") else ""
        line = path + (f"?{query}" if query else "")
        method = environ.get("REQUEST_METHOD", "-")
        protocol = environ.get("SERVER_PROTOCOL", "-")
        atoms.update(
            {
                "r": f"{method} {line} {protocol}",
                "U": path,
                "q": query,
                "h": "-",
                "u": "-",
                "f": "-",
                "a": "-",
            }
        )
        # Request and response headers and the environment ({name}i, {name}o, {name}e):
        # dropped, so that a format naming one writes "-".
        for name in [name for name in atoms if name.startswith("{")]:
            del atoms[name]
        return atoms


# --- The same log for any WSGI server (registry/serve.py: granian) -----------------------------
# The line of the format above, '"POST /api/v1/match HTTP/1.1" 200 123 1ms', written by the
# application: the request thread only puts it on a queue, a thread of the process writes it.
# The time is the application's; the bytes are the answer's Content-Length ("-" without one).

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# Characters a write of the access log holds at most, more lines than one permitting: under
# PIPE_BUF (4,096 bytes on Linux) for lines of ASCII, which request lines nearly always are.
_PIECE = 4000


def access_line(environ: dict[str, Any], status: str, headers: list[tuple[str, str]]) -> str:
    """The request as the access log shows it, without its time: nothing a client chose."""
    path = logged_path(environ.get("PATH_INFO") or "/")
    if environ.get("QUERY_STRING"):
        path += f"?{QUERY_PLACEHOLDER}"
    method = environ.get("REQUEST_METHOD", "-")
    protocol = environ.get("SERVER_PROTOCOL", "-")
    length = next((value for name, value in headers if name.lower() == "content-length"), "-")
    return f'"{method} {path} {protocol}" {status.split(" ", 1)[0]} {length}'


class _Writer:
    """Lines put on a queue by request threads, written by a thread of its own in batches, a
    tenth of a second apart: waking it for every line cost the server a fifth of its requests
    (GET /health, measured)."""

    def __init__(self, stream: TextIO, *, owned: bool = False) -> None:
        self.stream, self.owned = stream, owned
        self.failing = False
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._write, name="access-log", daemon=True)
        self.thread.start()

    def _write(self) -> None:
        while True:
            stopping = self.stopping.wait(0.1)
            batch = []
            while not self.lines.empty():
                batch.append(self.lines.get_nowait())
            # Written in pieces of whole lines within PIPE_BUF: each worker writes to the same
            # pipe (journald's) or file, and a write that size is never split by another's. A
            # line longer than a piece (nginx admits request lines of up to 8 KiB) goes alone.
            piece = ""
            for line in batch:
                if piece and len(piece) + len(line) >= _PIECE:
                    self._put(piece)
                    piece = ""
                piece += f"{line}\n"
            if piece:
                self._put(piece)
            if stopping:
                return

    def _put(self, text: str) -> None:
        # A write that fails (a closed pipe, a full disk) loses its lines, not the writer: the
        # thread goes on emptying the queue, which would otherwise grow with every request.
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            if not self.failing:
                logger.warning("access log lines lost: the log could not be written")
            self.failing = True
        else:
            self.failing = False

    def stop(self) -> None:
        """Write every line put so far, then stop (closing the stream if it opened it)."""
        self.stopping.set()
        self.thread.join(timeout=5)
        if self.owned:
            self.stream.close()


_writer: _Writer | None = None


def access_log_start(destination: str) -> None:
    """Log this process's requests to ``destination``: "-" standard output, else a file to
    append to; "" logs nothing. Once per process (after the fork, in a server's worker)."""
    global _writer  # one writer per process, by design
    if destination == "-":
        _writer = _Writer(sys.stdout)
    elif destination:
        _writer = _Writer(open(destination, "a"), owned=True)  # noqa: SIM115 - closed by stop()


def access_log_stop() -> None:
    global _writer  # one writer per process, by design
    if _writer is not None:
        _writer.stop()
        _writer = None


class AccessLog:
    """WSGI middleware: one line a request, once the application has answered it."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        writer = _writer
        if writer is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        answered: list[Any] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered[:] = (status, headers)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            if answered:
                elapsed = int((time.perf_counter() - started) * 1000)
                writer.lines.put(f"{access_line(environ, *answered)} {elapsed}ms")

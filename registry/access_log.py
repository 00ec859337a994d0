"""gunicorn's access log without query strings, hashes, keys or secrets (deploy/gunicorn.conf.py).

gunicorn writes the request line as the client sent it: ``POST /api/v1/match?hash=<hex>``, a
key put in a URL, a cursor, all reach the log, even when the registry refuses the request.
This logger writes the path without its query (``?[query]`` says there was one), with any
hash, secret, address or long token in the path replaced, and no header or environment value
at all, whatever the format asks for.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from registry.redaction import redact

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

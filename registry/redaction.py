"""Redaction of log records: the last line of defence for the registry's privacy rules.

The code never logs a hash, a case secret or an IP address on purpose; this filter, installed on
every log handler, removes them anyway if a library or a future change does (an exception message
that quotes a request body, a third-party debug line).
"""

from __future__ import annotations

import logging
import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A PDQ hash in text form (64 hex digits), or any longer hex run.
    (re.compile(r"(?i)(?<![0-9a-f])[0-9a-f]{64,}(?![0-9a-f])"), "[hash]"),
    # A case secret as shown to people: four groups of four Crockford base32 characters.
    (re.compile(r"(?i)\b[0-9a-z]{4}(?:-[0-9a-z]{4}){3}\b"), "[secret]"),
    # IPv4 addresses.
    (re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"), "[ip]"),
    # IPv6 addresses: the full eight groups, or a compressed form with "::".
    (
        re.compile(
            r"(?i)(?<![0-9a-z:])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"
            r"|(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?)"
            r"(?![0-9a-z:])"
        ),
        "[ip]",
    ),
)


def redact(text: str) -> str:
    """Return ``text`` with hashes, case secrets and IP addresses replaced by placeholders."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


class RedactFilter(logging.Filter):
    """A logging filter that rewrites each record's message through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True

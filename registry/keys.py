"""The shape of partner API keys: ``rmp_<lookup id>_<secret>``, and their peppered digests."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "rmp"
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_LOOKUP_CHARS = 10
_SECRET_CHARS = 40  # 200 random bits.
_KEY = re.compile(
    rf"{PREFIX}_([{_ALPHABET}]{{{_LOOKUP_CHARS}}})_([{_ALPHABET}]{{{_SECRET_CHARS}}})"
)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    lookup_id: str
    raw: str


def new_key() -> ParsedKey:
    """Return a new random key (its lookup id and the full text shown once to the partner)."""
    lookup_id = "".join(secrets.choice(_ALPHABET) for _ in range(_LOOKUP_CHARS))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_CHARS))
    return ParsedKey(lookup_id=lookup_id, raw=f"{PREFIX}_{lookup_id}_{secret}")


def parse_key(text: str) -> ParsedKey | None:
    """Return the parts of a well-formed key, or None."""
    match = _KEY.fullmatch(text.strip())
    if match is None:
        return None
    return ParsedKey(lookup_id=match.group(1), raw=match.group(0))


def key_digest(raw: str, pepper: str) -> str:
    """HMAC-SHA256 of the whole key under the server's pepper, as 64 hex digits."""
    return hmac.new(pepper.encode(), raw.encode(), hashlib.sha256).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)

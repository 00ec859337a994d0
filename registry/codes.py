"""Case references and secrets: random, non-sequential, easy to read aloud and to type.

Both use Crockford's base32 alphabet (no I, L, O or U), so that a person copying a receipt by
hand cannot confuse 0 with O or 1 with I/L; input is normalised the same forgiving way.
"""

from __future__ import annotations

import secrets

# The version of the consent text a person attests to (the register page, the partner client),
# recorded with each case. Change it whenever that text changes in meaning.
TERMS_VERSION = "2026-11"

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_READS_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})

REFERENCE_PREFIX = "RMP"
REFERENCE_CHARS = 10  # 50 random bits: unguessable enough to list nothing, short enough to read.
SECRET_CHARS = 16  # 80 random bits, as four groups of four.


def _random_chars(count: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(count))


def _normalise(text: str) -> str:
    return "".join(text.split()).replace("-", "").upper().translate(_READS_AS)


def new_reference() -> str:
    """Return a new public case reference, e.g. ``RMP-7K3QD-M9X2A``."""
    body = _random_chars(REFERENCE_CHARS)
    return f"{REFERENCE_PREFIX}-{body[:5]}-{body[5:]}"


def new_secret() -> str:
    """Return a new case secret of 80 bits, e.g. ``8F2K-QX7M-3DWA-P9ZN``."""
    body = _random_chars(SECRET_CHARS)
    return "-".join(body[i : i + 4] for i in range(0, SECRET_CHARS, 4))


def normalise_reference(text: object) -> str | None:
    """Return the canonical form of a typed reference, or None if it cannot be one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    compact = _normalise(text)
    if compact.startswith(REFERENCE_PREFIX):
        compact = compact[len(REFERENCE_PREFIX) :]
    if len(compact) != REFERENCE_CHARS or any(char not in ALPHABET for char in compact):
        return None
    return f"{REFERENCE_PREFIX}-{compact[:5]}-{compact[5:]}"


def normalise_secret(text: object) -> str | None:
    """Return the canonical form of a typed secret, or None if it cannot be one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    compact = _normalise(text)
    if len(compact) != SECRET_CHARS or any(char not in ALPHABET for char in compact):
        return None
    return "-".join(compact[i : i + 4] for i in range(0, SECRET_CHARS, 4))

"""Opaque cursors of the sync feeds: a position in the change sequence, as a short string.

A cursor names the last change a partner was served (``registry.Change`` id); the feed resumes
after it. The text is ``c1.`` and the id as 8 big-endian bytes in unpadded base64url. Partners
must treat it as opaque; the parser is strict (only the exact text ``cursor_encode`` writes is
accepted), so a cursor either means what it was issued for or is refused with 400.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

from api.errors import ApiError

_PREFIX = "c1."
_PATTERN = re.compile(r"c1\.[A-Za-z0-9_-]{11}")
_MAX_ID = 2**63 - 1  # PostgreSQL bigint


class CursorInvalid(ApiError):  # noqa: N818 - named for what the client sees
    def __init__(self) -> None:
        super().__init__(
            400,
            "cursor_invalid",
            "This cursor was not issued by this feed: send the next_cursor of a previous "
            "answer, or none to start from the beginning.",
        )


def cursor_encode(change_id: int) -> str:
    """The cursor text of the position just after change ``change_id`` (0: the beginning)."""
    if not 0 <= change_id <= _MAX_ID:
        raise ValueError("A change id is a bigint of at least 0.")
    raw = struct.pack(">Q", change_id)
    return _PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def cursor_parse(text: str) -> int:
    """The change id that ``text`` was encoded from; raises CursorInvalid for any other text."""
    if not isinstance(text, str) or _PATTERN.fullmatch(text) is None:
        raise CursorInvalid
    try:
        raw = base64.urlsafe_b64decode(text[len(_PREFIX) :] + "=")
    except (binascii.Error, ValueError):
        raise CursorInvalid from None
    (change_id,) = struct.unpack(">Q", raw)
    # Base64 has spare bits in its last digit: only the canonical text round-trips.
    if change_id > _MAX_ID or cursor_encode(change_id) != text:
        raise CursorInvalid
    return int(change_id)

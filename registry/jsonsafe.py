"""Reading request bodies as JSON without letting their shape exhaust the server.

Python's parser recurses once per nesting level: a body of a few kilobytes nested a thousand
levels deep raises RecursionError, which the callers' ``ValueError`` handlers do not catch (a
500 and a traceback in the log), and a slightly shallower one parses but then breaks whatever
walks it next. Every JSON body the registry reads (the partner API's parser, api.parsers, and
the pages' JSON calls) goes through :func:`json_loads_bounded`, which refuses a body nested
deeper than MAX_DEPTH before parsing it. The registry's deepest body is four levels.

No Django import: the pages and the API map the errors to their own 400 answers.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32

_OPENING = frozenset(b"[{")
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in _BRACKETS)
# A JSON string: its brackets are text, not nesting.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class JsonMalformed(ValueError):  # noqa: N818 - named for what the body is
    """The body is not JSON (or not UTF-8)."""


class JsonTooDeep(ValueError):  # noqa: N818
    """The body nests arrays and objects deeper than MAX_DEPTH levels."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.max_depth = max_depth


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in ``data``, brackets inside strings aside.

    Counts brackets only: malformed JSON gets a figure too, never an error.
    """
    depth = deepest = 0
    for byte in _STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        if byte in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def json_loads_bounded(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` as strict JSON (no NaN, no Infinity, as DRF's STRICT_JSON).

    Raises JsonTooDeep past ``max_depth`` levels, JsonMalformed for anything that is not JSON.

    Bodies with fewer brackets than ``max_depth`` (nearly all: a batch of 1,000 hashes has two)
    are not scanned at all; the others are scanned once, in time linear in their size.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") > max_depth and json_depth(raw) > max_depth:
        raise JsonTooDeep(max_depth)
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise JsonMalformed(str(error)) from None

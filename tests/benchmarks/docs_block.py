"""The measured tables a limits script writes into docs/limits.md, between its own markers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path


def docs_block_write(path: Path, *, begin: str, end: str, lines: Sequence[str]) -> None:
    """Replace what stands between ``begin`` and ``end`` in ``path`` with ``lines``; exit with a
    message naming the markers when the file lacks them."""
    text = path.read_text()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {begin} ... {end} markers")
    block = "\n".join([begin, "", *lines, "", end])
    path.write_text(pattern.sub(lambda _: block, text))

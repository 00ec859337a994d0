"""The video limits script (make limits) runs on a small sample and prints the rows that
docs/limits.md shows under "Videos"."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import photos
from tests.benchmarks.video_limits import (
    BEGIN,
    CORRUPTED,
    EDITS,
    END,
    HEADER,
    OTHER_FOOTAGE,
    PAIRS_HEADER,
    SAME_FOOTAGE,
    SOURCES_HEADER,
)

ROOT = Path(__file__).resolve().parents[2]


def _table(lines: list[str], header: str) -> dict[str, list[str]]:
    """The rows under ``header`` (after its separator), by their first cell, as cells."""
    start = lines.index(header) + 2
    rows = {}
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[cells[0]] = cells
    return rows


@pytest.fixture(scope="module")
def quick_run() -> list[str]:
    pytest.importorskip("vpdq", reason="the video extra: make video")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (make system-deps)")
    try:
        photos.fetch()
    except photos.PhotosUnavailable as error:
        pytest.skip(f"the sample videos are unavailable: {error}")
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.video_limits", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode == 2:
        pytest.skip(result.stderr.strip().splitlines()[-1])
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.slow
def test_the_script_prints_a_row_per_edit_and_counts_false_matches(quick_run: list[str]) -> None:
    edits = _table(quick_run, HEADER)
    assert list(edits) == [edit.name for edit in EDITS]
    # A re-encoded copy of every video matches; nothing matches a video of other footage.
    itself = edits[EDITS[0].name]
    assert itself[1] == itself[2]
    assert all(row[-1].startswith("0 of ") for row in edits.values())
    pairs = _table(quick_run, PAIRS_HEADER)
    assert list(pairs) == [SAME_FOOTAGE, OTHER_FOOTAGE]
    assert pairs[OTHER_FOOTAGE][2] == "0"
    assert len(_table(quick_run, SOURCES_HEADER)) == 3


def test_the_docs_table_has_every_row_the_script_prints() -> None:
    document = (ROOT / "docs" / "limits.md").read_text()
    block = document[document.index(BEGIN) : document.index(END)].splitlines()
    assert list(_table(block, HEADER)) == [*(edit.name for edit in EDITS), CORRUPTED]
    assert list(_table(block, PAIRS_HEADER)) == [SAME_FOOTAGE, OTHER_FOOTAGE]
    assert len(_table(block, SOURCES_HEADER)) >= 10

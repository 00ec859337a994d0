"""The derived-view benchmark (make limits) runs on a tiny sample and prints the rows that
docs/limits.md shows; its registered set never holds two photos of one near-identical series."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import photos
from tests.benchmarks import derivative_sets as sets
from tests.benchmarks.derivative_limits import (
    BEGIN,
    COST_HEADER,
    COSTS,
    CROSS,
    END,
    FALSE_HEADER,
    RECALL_HEADER,
    TOTAL,
)

ROOT = Path(__file__).resolve().parents[2]
RECALL_ROWS = [name.rstrip("*") for name in sets.EDIT_NAMES]
FALSE_ROWS = [*sets.KINDS, f"**{TOTAL}**", CROSS]


def _table(lines: list[str], header: str) -> dict[str, str]:
    """The rows under ``header`` (after its separator), by their first cell."""
    start = lines.index(header) + 2
    rows = {}
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        rows[line.split(" | ")[0].removeprefix("| ")] = line
    return rows


@pytest.fixture(scope="module")
def quick_run() -> list[str]:
    try:
        photos.fetch()
    except photos.PhotosUnavailable as error:
        pytest.skip(f"the photo corpus is unavailable: {error}")
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.derivative_limits", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode == 2:
        pytest.skip(result.stderr.strip().splitlines()[-1])
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_script_prints_a_row_per_edit_per_distractor_kind_and_per_cost(
    quick_run: list[str],
) -> None:
    assert len(RECALL_ROWS) >= 30
    recall = _table(quick_run, RECALL_HEADER)
    assert list(recall) == RECALL_ROWS
    # The photo itself matches by its own hash, as whole-photo PDQ always did.
    assert recall["the photo itself"].endswith("| 100% | 100% | 2 / 0 / 0 |")
    assert list(_table(quick_run, FALSE_HEADER)) == FALSE_ROWS
    assert list(_table(quick_run, COST_HEADER)) == list(COSTS)


def test_the_docs_table_has_every_row_the_script_prints() -> None:
    document = (ROOT / "docs" / "limits.md").read_text()
    assert BEGIN in document
    assert END in document
    block = document[document.index(BEGIN) : document.index(END)]
    lines = block.splitlines()
    assert list(_table(lines, RECALL_HEADER)) == RECALL_ROWS
    assert list(_table(lines, FALSE_HEADER)) == FALSE_ROWS
    assert list(_table(lines, COST_HEADER)) == list(COSTS)
    distractors = re.search(r"^([\d,]+) distractors, each against", block, flags=re.MULTILINE)
    assert distractors
    assert int(distractors[1].replace(",", "")) >= 2000


def test_no_two_registered_photos_belong_to_one_series() -> None:
    registered = [*sets.REGISTERED_PHOTOS, *sets.LOGO_CARRIERS, *sets.CAPTION_CARRIERS]
    series = [photos.SERIES_OF[name] for name in registered if name in photos.SERIES_OF]
    assert len(series) == len(set(series))
    assert not set(registered) & set(sets.ROOM_BACKGROUNDS)
    assert not set(registered) & photos.NOT_PHOTOS


def test_transparency_is_composited_over_white() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2] = (200, 10, 10, 255)
    rgb = photos.to_rgb(Image.fromarray(rgba))
    assert rgb.dtype == np.uint8
    assert rgb.shape == (4, 4, 3)
    assert (rgb[:2] == (200, 10, 10)).all()
    assert (rgb[2:] == 255).all()

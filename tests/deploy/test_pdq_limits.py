"""The PDQ limits script (make limits) runs on a small sample and prints the table docs/limits.md
shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.pdq_limits import HEADER, TRANSFORMS, UNRELATED

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (?P<name>[^|]+) \| \d+ \| \d+-\d+ \| \d+% \| \d+% \|$")


def test_the_limits_script_prints_one_row_per_transformation() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.pdq_limits", "--images", "3", "--seed", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("3 generated photos of 640x480 px (seed 7;")
    table = lines[lines.index(HEADER) + 2 :]
    names = [match["name"] for line in table if (match := ROW.match(line))]
    assert names == [name for name, _ in TRANSFORMS] + [UNRELATED]
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table}
    # Re-encoding at a high quality is always caught; an unrelated photo never is.
    assert rows["JPEG quality 90"].endswith("| 100% | 100% |")
    assert rows[UNRELATED].endswith("| 0% | 0% |")


def test_the_limits_table_in_the_docs_has_every_row() -> None:
    document = (ROOT / "docs" / "limits.md").read_text()
    assert HEADER in document
    for name, _ in [*TRANSFORMS, (UNRELATED, None)]:
        assert re.search(rf"^\| {re.escape(name)} \| ", document, flags=re.MULTILINE), name

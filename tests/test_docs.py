"""The examples in the documentation run, against a live server, and say what they claim."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry.client import Client, hash_file
from registry.matching.follower import Matcher
from tests.conftest import PartnerPersona
from tests.images import write_photo

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(document: str) -> list[str]:
    text = (ROOT / "docs" / document).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.django_db(transaction=True)
def test_the_partner_example_refuses_a_registered_photo_and_allows_another(
    live_server: object, tmp_path: Path, partner_a: PartnerPersona, match_index: Matcher
) -> None:
    example = _python_blocks("partners.md")[-1]
    script = tmp_path / "example.py"
    script.write_text(example)
    registered = write_photo(tmp_path / "registered.jpg", seed=11)
    unrelated = write_photo(tmp_path / "unrelated.jpg", seed=12)
    url = str(live_server)
    Client(url).submit([hash_file(registered)], scope="intimate")
    match_index.catch_up()

    result = subprocess.run(
        [sys.executable, str(script), str(registered), str(unrelated)],
        env={**os.environ, "REMPART_URL": url, "REMPART_KEY": partner_a.raw_key},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{registered} publish: False sexualising edit: False",
        f"{unrelated} publish: True sexualising edit: True",
    ]


def test_the_hashing_snippet_gives_what_the_client_gives(tmp_path: Path) -> None:
    snippet = _python_blocks("partners.md")[0]
    photo = write_photo(tmp_path / "upload.jpg", seed=13)
    namespace: dict[str, object] = {}
    started = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(snippet, "partners.md", "exec"), namespace)  # noqa: S102 - our own docs
    finally:
        os.chdir(started)
    assert namespace["pdq"] == hash_file(photo).original

"""The partner client (``rempart``): local hashing, and a full round trip against a live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image

from registry.client import Client, hash_file, main
from registry.matching.follower import Matcher
from registry.pdq import distance, parse_hash
from tests.images import png_bytes, write_photo


def test_hash_prints_the_eight_dihedral_hashes_and_quality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_photo(tmp_path / "photo.png", seed=1)
    assert main(["hash", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{path}\tquality ")
    variants = [line.split() for line in lines[1:9]]
    assert [variant for variant, _ in variants] == [
        "original", "rot90", "rot180", "rot270", "flip_tb", "flip_lr", "transpose", "antitranspose",
    ]  # fmt: skip
    for _, value in variants:
        parse_hash(value)


def test_hash_file_applies_the_exif_orientation(tmp_path: Path) -> None:
    upright = write_photo(tmp_path / "upright.png", seed=2)
    with Image.open(upright) as image:
        sideways = image.transpose(Image.Transpose.ROTATE_90)
        exif = sideways.getexif()
        exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
        sideways.save(tmp_path / "tagged.png", exif=exif)
        raw_vector, _ = pdqhash.compute(np.asarray(sideways.convert("RGB")))
    raw = np.packbits(raw_vector.astype(np.uint8)).tobytes()
    shown = parse_hash(hash_file(tmp_path / "tagged.png").original)
    expected = parse_hash(hash_file(upright).original)
    assert distance(shown, expected) == 0  # hashed as displayed, upright
    assert distance(raw, expected) > 31  # the stored, sideways pixels would not have matched


def test_submit_refuses_without_attestation(tmp_path: Path) -> None:
    path = write_photo(tmp_path / "photo.png", seed=3)
    assert main(["submit", str(path), "--scope", "intimate"]) == 2


def test_client_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="http"):
        Client("file:///etc/passwd")


@pytest.mark.django_db(transaction=True)
def test_round_trip_register_match_withdraw(
    live_server: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    partner_a: object,
    match_index: Matcher,
) -> None:
    url = str(live_server)
    photo = write_photo(tmp_path / "photo.jpg", seed=4)
    other = write_photo(tmp_path / "other.jpg", seed=5)
    with Image.open(photo) as image:  # what a platform receives: re-encoded and rotated
        image.rotate(90, expand=True).save(tmp_path / "upload.jpg", quality=70)
    match_index.start()

    assert main(["--url", url, "submit", str(photo), "--scope", "intimate", "--attest"]) == 0
    out = capsys.readouterr().out
    reference = out.split("case reference:")[1].split()[0]
    secret = out.split("case secret:")[1].split()[0]

    key = partner_a.raw_key  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while main(["--url", url, "match", str(tmp_path / "upload.jpg"), "--key", key]) != 1:
        assert time.monotonic() < deadline, "the new case never became matchable"
        time.sleep(0.05)
    assert "MATCH intimate active" in capsys.readouterr().out
    assert main(["--url", url, "match", str(other), "--key", key]) == 0

    Client(url).post("/api/v1/cases/withdraw", {"case_reference": reference, "case_secret": secret})
    assert main(["--url", url, "match", str(tmp_path / "upload.jpg"), "--key", key]) == 0
    assert "no match" in capsys.readouterr().out
    match_index.stop()


def _blank(path: Path) -> Path:
    Image.new("RGB", (64, 48), (200, 200, 200)).save(path)
    return path


def test_a_flat_image_is_reported_not_matchable(tmp_path: Path) -> None:
    blank = hash_file(_blank(tmp_path / "blank.png"))
    assert blank.quality == 0
    assert blank.unmatchable_reason is not None
    assert hash_file(write_photo(tmp_path / "photo.png", seed=6)).unmatchable_reason is None


def test_match_of_only_flat_images_asks_nothing_and_reports_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = _blank(tmp_path / "blank.png")
    # Nothing listens on port 9: a request would fail with status 2.
    assert main(["--url", "http://127.0.0.1:9", "match", str(blank), "--key", "rmp_x"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{blank}\tnot matchable: ")


@pytest.mark.django_db(transaction=True)
def test_match_skips_a_flat_image_and_matches_the_others(
    live_server: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    partner_a: object,
    match_index: Matcher,
) -> None:
    url = str(live_server)
    photo = write_photo(tmp_path / "photo.jpg", seed=7)
    other = write_photo(tmp_path / "other.jpg", seed=8)
    blank = _blank(tmp_path / "blank.png")
    Client(url).submit([hash_file(photo)], scope="intimate")
    match_index.catch_up()
    key = partner_a.raw_key  # type: ignore[attr-defined]

    status = main(["--url", url, "match", str(blank), str(photo), str(other), "--key", key])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0].startswith(f"{blank}\tnot matchable: ")
    assert lines[1].startswith(f"{photo}\tMATCH intimate active ")
    assert lines[2] == f"{other}\tno match"
    assert len(lines) == 3

    assert main(["--url", url, "match", str(blank), str(other), "--key", key]) == 0


def test_a_16_bit_greyscale_png_is_hashed_from_its_high_byte(tmp_path: Path) -> None:
    grey = np.asarray(Image.open(write_photo(tmp_path / "photo.png", seed=9)).convert("L"))
    deep = grey.astype(np.uint16) * 256 + 255  # the high byte is the 8-bit grey
    (tmp_path / "deep.png").write_bytes(png_bytes(deep, 0))
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert hash_file(tmp_path / "deep.png").hashes == hash_file(tmp_path / "grey.png").hashes


def test_transparency_is_composited_over_white(tmp_path: Path) -> None:
    rgb = np.asarray(Image.open(write_photo(tmp_path / "photo.png", seed=10)))
    alpha = np.zeros(rgb.shape[:2], dtype=np.uint8)
    alpha[:, : rgb.shape[1] // 2] = 255
    alpha[:40] = 128
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "cut.png")
    premultiplied = (rgb.astype(np.int64) * alpha[..., None] * 2 + 255) // 510
    composited = (premultiplied + 255 - alpha[..., None]).astype(np.uint8)
    Image.fromarray(composited).save(tmp_path / "composited.png")
    assert hash_file(tmp_path / "cut.png").hashes == hash_file(tmp_path / "composited.png").hashes


ROOT = Path(__file__).resolve().parents[2]
CLIENT_DEPENDENCIES = {"numpy", "pdqhash", "pillow"}
SERVER_ONLY = ["django", "rest_framework", "celery", "psycopg", "numba", "gunicorn", "redis"]

WITHOUT_THE_SERVER = """
import importlib.abc, runpy, sys

class ServerUnavailable(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the client install)")
        return None

sys.meta_path.insert(0, ServerUnavailable())
sys.argv = ["rempart", "hash", IMAGE]
try:
    runpy.run_module("registry.client", run_name="__main__")
finally:
    loaded = sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED)
    print("loaded:", loaded)
"""


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>~! ]", requirement, maxsplit=1)[0].lower()


def test_the_base_install_is_only_what_the_client_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {_name(r) for r in project["dependencies"]} == CLIENT_DEPENDENCIES
    server = {_name(r) for r in project["optional-dependencies"]["server"]}
    assert {"django", "celery", "gunicorn", "granian", "numba", "psycopg"} <= server
    lock = {
        line.split("==")[0].lower(): line
        for line in (ROOT / "deploy" / "requirements.lock").read_text().split()
        if "==" in line
    }
    for extra in ["dependencies", "server", "video"]:
        pins = (
            project[extra] if extra == "dependencies" else project["optional-dependencies"][extra]
        )
        for requirement in pins:
            name, version = re.sub(r"\[.*\]", "", requirement).split("==")
            assert lock.get(name.lower(), "").lower() == f"{name}=={version}".lower(), requirement


def test_the_client_hashes_without_any_of_the_server_installed(tmp_path: Path) -> None:
    image = write_photo(tmp_path / "photo.png", seed=12)
    script = f"BLOCKED = {set(SERVER_ONLY)!r}\nIMAGE = {str(image)!r}\n" + WITHOUT_THE_SERVER
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    expected = hash_file(image)
    assert lines[0] == f"{image}\tquality {expected.quality}"
    assert lines[1].split()[1] == expected.original
    assert lines[-1] == "loaded: []"

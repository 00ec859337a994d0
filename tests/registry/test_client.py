"""The partner client (``rempart``): local hashing, and a full round trip against a live server."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image

from registry.client import Client, hash_file, main
from registry.matching.follower import Matcher
from registry.pdq import distance, parse_hash
from tests.images import write_photo


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

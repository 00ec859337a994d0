"""Derived views through the API: a photo registered with its views, a partner's upload matched
with its own, the kind of each match, and what the feeds carry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.test import Client
from PIL import Image

from registry import derivatives
from registry.client import ImageHashes, _sendable, hash_file
from registry.matching.follower import Matcher
from registry.models import AllowListedHash, Case, ImageHash, MatchCall
from registry.pdq import DIHEDRAL_VARIANTS
from registry.services.cases import case_withdraw
from tests.conftest import PartnerPersona
from tests.factories import random_hash
from tests.images import scene_rgb

pytestmark = pytest.mark.django_db


def _save(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    return path


def _register(photo: ImageHashes) -> dict[str, Any]:
    body = {
        "scope": "intimate",
        "attestations": {
            "depicted_or_acting_for": True,
            "rights_to_register": True,
            "minor_depicted": False,
        },
        "terms_version": "2026-11",
        "language": "en",
        "images": [
            {"hashes": list(photo.hashes), "quality": photo.quality, "views": dict(photo.views)}
        ],
    }
    response = Client().post("/api/v1/cases", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    created: dict[str, Any] = response.json()
    return created


def _match(persona: PartnerPersona, body: dict[str, Any]) -> Any:
    return Client().post(
        "/api/v1/match",
        json.dumps({"purpose": "publish", **body}),
        content_type="application/json",
        headers=persona.auth,
    )


def _uploads(persona: PartnerPersona, paths: list[Path]) -> list[list[dict[str, Any]]]:
    uploads = [hash_file(path, query=True) for path in paths]
    response = _match(
        persona,
        {
            "hashes": [upload.original for upload in uploads],
            "views": [_sendable(upload.query) for upload in uploads],
        },
    )
    assert response.status_code == 200, response.content
    return [result["matches"] for result in response.json()["results"]]


@pytest.fixture
def registered(tmp_path: Path, match_index: Matcher) -> tuple[np.ndarray, dict[str, Any]]:
    photo = scene_rgb(0)
    created = _register(hash_file(_save(tmp_path / "photo.png", photo), views=True))
    match_index.catch_up()
    return photo, created


def _inpainted(photo: np.ndarray) -> np.ndarray:
    height, width = photo.shape[:2]
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[int(height * 0.3) : int(height * 0.85), int(width * 0.33) : int(width * 0.67)] = 255
    return cv2.inpaint(photo, mask, 5, cv2.INPAINT_TELEA)


def test_a_registration_stores_the_derived_views_beside_the_dihedral_hashes(
    registered: tuple[np.ndarray, dict[str, Any]],
) -> None:
    variants = list(ImageHash.objects.values_list("variant", flat=True))
    assert set(DIHEDRAL_VARIANTS) <= set(variants)
    derived = [name for name in variants if name not in DIHEDRAL_VARIANTS]
    assert {"c10", "m1", "g1"} <= set(derived)
    assert set(derived) <= set(derivatives.DERIVED_VIEW_NAMES)
    assert len(variants) <= 96


def test_each_copy_matches_with_its_kind_and_another_photo_of_the_room_does_not(
    registered: tuple[np.ndarray, dict[str, Any]],
    partner_a: PartnerPersona,
    tmp_path: Path,
) -> None:
    photo, _ = registered
    height, width = photo.shape[:2]
    boxed = np.zeros((height + 140, width, 3), dtype=np.uint8)
    boxed[70 : 70 + height] = photo
    copies = {
        "the photo": photo,
        "a 10% crop": photo[24:-24, 32:-32],
        "letterboxed": boxed,
        "inpainted body": _inpainted(photo),
        "the person elsewhere": scene_rgb(0, figure_x=0.3, figure_seed=77),
        "another photo": scene_rgb(1),
    }
    paths = [
        _save(tmp_path / f"{index}.png", pixels) for index, pixels in enumerate(copies.values())
    ]
    results = dict(zip(copies, _uploads(partner_a, paths), strict=True))
    kinds = {name: [match["kind"] for match in matches] for name, matches in results.items()}
    assert kinds == {
        "the photo": ["whole"],
        "a 10% crop": ["reframed"],
        "letterboxed": ["reframed"],
        "inpainted body": ["regions"],
        "the person elsewhere": [],
        "another photo": [],
    }
    regions = results["inpainted body"][0]["regions"]
    assert 2 <= regions["matched"] <= regions["of"]
    assert "regions" not in results["a 10% crop"][0]
    # The call counted every hash it carried, views included, never the hashes themselves.
    call = MatchCall.objects.latest("id")
    assert call.hashes > len(copies)


def test_a_withdrawn_photo_matches_in_no_view(
    registered: tuple[np.ndarray, dict[str, Any]],
    partner_a: PartnerPersona,
    tmp_path: Path,
    match_index: Matcher,
) -> None:
    photo, created = registered
    case_withdraw(case=Case.objects.get(reference=created["case_reference"]))
    paths = [
        _save(tmp_path / "crop.png", photo[24:-24, 32:-32]),
        _save(tmp_path / "edit.png", _inpainted(photo)),
        _save(tmp_path / "same.png", photo),
    ]
    assert _uploads(partner_a, paths) == [[], [], []]  # before the index has caught up
    match_index.catch_up()
    assert _uploads(partner_a, paths) == [[], [], []]


@pytest.mark.parametrize(
    ("views", "status", "code"),
    [
        ("not a list", 400, "views_invalid"),
        ([], 400, "views_invalid"),
        ([{"c10": "0" * 64}], 400, "view_unknown"),
        ([{"trimmed": "xyz"}], 422, "hash_malformed"),
        ([["trimmed"]], 400, "views_invalid"),
    ],
)
def test_bad_views_are_refused_with_a_stable_code(
    partner_a: PartnerPersona, views: Any, status: int, code: str
) -> None:
    response = _match(partner_a, {"hashes": [random_hash().hex()], "views": views})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert MatchCall.objects.count() == 0


def test_views_count_towards_the_hashes_of_a_call(partner_a: PartnerPersona) -> None:
    one = {name: random_hash().hex() for name in derivatives.QUERY_VIEW_NAMES[:40]}
    response = _match(
        partner_a, {"hashes": [random_hash().hex() for _ in range(25)], "views": [one] * 25}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_hashes"


def test_a_view_of_a_flat_region_is_left_out_not_refused(partner_a: PartnerPersona) -> None:
    response = _match(
        partner_a, {"hashes": [random_hash().hex()], "views": [{"m1": "0" * 64, "g1": None}]}
    )
    # A null hash is no hash at all; an all-zero one is a flat region's and is left out.
    assert response.status_code == 422
    response = _match(partner_a, {"hashes": [random_hash().hex()], "views": [{"m1": "0" * 64}]})
    assert response.status_code == 200
    assert response.json()["results"] == [{"matches": []}]


def test_the_native_feed_carries_the_views_and_the_stopncii_feed_only_dihedral_hashes(
    registered: tuple[np.ndarray, dict[str, Any]], partner_a: PartnerPersona
) -> None:
    feed = Client().get("/api/v1/hashes/changes", headers=partner_a.auth).json()
    (entry,) = feed["entries"]
    variants = [item["variant"] for item in entry["hashes"]]
    assert variants[:8] == list(DIHEDRAL_VARIANTS)
    kinds = {item["variant"]: item["kind"] for item in entry["hashes"]}
    assert (kinds["original"], kinds["c10"], kinds["m1"], kinds["g1"]) == (
        "whole",
        "reframed",
        "regions",
        "regions",
    )
    dihedral = {
        bytes(value).hex()
        for value in ImageHash.objects.filter(variant__in=DIHEDRAL_VARIANTS).values_list(
            "value", flat=True
        )
    }
    stopncii = (
        Client()
        .get(
            "/v1/FetchHashes",
            {"startTimestamp": 0},
            headers={"Ocp-Apim-Subscription-Key": partner_a.raw_key, "x-functions-key": "f"},
        )
        .json()
    )
    assert {record["hashValue"] for record in stopncii["hashRecords"]} == dihedral


def test_an_allow_listed_view_is_left_out_and_the_photo_registered(
    tmp_path: Path, superuser: Any
) -> None:
    photo = hash_file(_save(tmp_path / "photo.png", scene_rgb(2)), views=True)
    listed = dict(photo.views)["g2"]
    AllowListedHash.objects.create(
        value=bytes.fromhex(listed),
        label="a logo",
        added_by=superuser,
        created_at="2026-12-01T00:00Z",
    )
    _register(photo)
    variants = set(ImageHash.objects.values_list("variant", flat=True))
    assert "g2" not in variants
    assert "c10" in variants


def test_a_photo_with_a_plain_top_still_matches_regions_by_the_tiles_it_has(
    partner_a: PartnerPersona, tmp_path: Path, match_index: Matcher
) -> None:
    photo = scene_rgb(0)
    photo[: photo.shape[0] // 5] = (90, 120, 200)  # a clear sky: its guard tiles are flat
    registered = hash_file(_save(tmp_path / "sky.png", photo), views=True)
    tiles = {name for name, _ in registered.views} & set(derivatives.TILE_NAMES)
    assert tiles == {"g4", "g5"}
    _register(registered)
    match_index.catch_up()
    (matches,) = _uploads(partner_a, [_save(tmp_path / "edit.png", _inpainted(photo))])
    assert [match["kind"] for match in matches] == ["regions"]
    assert matches[0]["regions"]["of"] == 5 + 2

"""Factories for test data: valid PDQ-shaped hashes, cases made through the services, partners."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.models import Case, ConsentRecord
from registry.pdq import DIHEDRAL_VARIANTS, HASH_BITS, DihedralHashes
from registry.services.cases import Attestations, case_create
from registry.videos import Frame, VideoHashes

_rng = random.Random(20261124)


def wait_for_a_fresh_minute() -> None:
    """Wait until at least 20 s are left in the clock's minute: the partners' hash budgets are
    fixed minute windows, and a test that crosses into the next one gets a second budget (a
    loaded machine can take several seconds over a hundred calls)."""
    while time.time() % 60 > 40:
        time.sleep(0.5)


def random_hash(rng: random.Random = _rng, bits_set: int = 128) -> bytes:
    """A random 256-bit hash with exactly ``bits_set`` bits set, as PDQ produces."""
    value = 0
    for bit in rng.sample(range(HASH_BITS), bits_set):
        value |= 1 << bit
    return value.to_bytes(32, "big")


def flip_bits(value: bytes, count: int, rng: random.Random = _rng) -> bytes:
    """``value`` with ``count`` distinct bits flipped (a near-duplicate at distance ``count``)."""
    number = int.from_bytes(value, "big")
    for bit in rng.sample(range(HASH_BITS), count):
        number ^= 1 << bit
    return number.to_bytes(32, "big")


def near_duplicate(value: bytes, distance: int, rng: random.Random = _rng) -> bytes:
    """A hash ``distance`` bits from ``value`` that PDQ could produce (at most 128 bits set).

    Clears ceil(distance / 2) set bits and sets floor(distance / 2) clear ones, as an edit of the
    photo moves coefficients across the median.
    """
    number = int.from_bytes(value, "big")
    ones = [bit for bit in range(HASH_BITS) if number >> bit & 1]
    zeros = [bit for bit in range(HASH_BITS) if not number >> bit & 1]
    for bit in rng.sample(ones, (distance + 1) // 2) + rng.sample(zeros, distance // 2):
        number ^= 1 << bit
    return number.to_bytes(32, "big")


def random_dihedral(rng: random.Random = _rng, quality: int = 90) -> DihedralHashes:
    return DihedralHashes(
        hashes=tuple(random_hash(rng) for _ in DIHEDRAL_VARIANTS), quality=quality
    )


def random_video(rng: random.Random = _rng, *, frames: int = 5) -> VideoHashes:
    """A video as registry.videos.parse_video returns it: ``frames`` distinct frames of quality
    90, one a second, and a random file MD5."""
    return VideoHashes(
        frames=tuple(
            Frame(value=random_hash(rng), quality=90 - second % 3, timestamp=float(second))
            for second in range(frames)
        ),
        md5=rng.randbytes(16),
        duration=float(frames),
    )


def dihedral_payload(image: DihedralHashes) -> dict[str, object]:
    """The JSON shape of one image as the web form and the API send it."""
    return {"hashes": [value.hex() for value in image.hashes], "quality": image.quality}


def case_creation_body(
    images: Sequence[dict[str, object]],
    *,
    scope: str = "intimate",
    language: str = "en",
    minor_depicted: bool = False,
) -> dict[str, Any]:
    """The JSON body that opens a case through the public API (POST /api/v1/cases)."""
    return {
        "scope": scope,
        "attestations": {
            "depicted_or_acting_for": True,
            "rights_to_register": True,
            "minor_depicted": minor_depicted,
        },
        "terms_version": "2026-11",
        "language": language,
        "images": list(images),
    }


ATTESTED = Attestations(depicted_or_acting_for=True, rights_to_register=True, minor_depicted=False)


@dataclass(frozen=True)
class RegisteredCase:
    case: Case
    secret: str
    images: list[DihedralHashes]
    videos: list[VideoHashes] = field(default_factory=list)


def register_case(
    *,
    images: int = 2,
    scope: str = ConsentRecord.Scope.INTIMATE,
    minor_depicted: bool = False,
    videos: int = 0,
) -> RegisteredCase:
    """A case opened through case_create, as a person would, with its secret (``videos``
    random videos after the photos)."""
    hashes = [random_dihedral() for _ in range(images)]
    clips = [random_video() for _ in range(videos)]
    created = case_create(
        scope=scope,
        attestations=Attestations(
            depicted_or_acting_for=True, rights_to_register=True, minor_depicted=minor_depicted
        ),
        terms_version="2026-11",
        language="en",
        images=hashes,
        videos=clips,
    )
    return RegisteredCase(case=created.case, secret=created.secret, images=hashes, videos=clips)

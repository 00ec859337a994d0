"""PDQ hashes as the registry accepts them: parsing, validation and distance.

Pure Python with no Django import, so that the partner client and the tests use the same rules
as the service. A PDQ hash is 256 bits, written as 64 hexadecimal digits whose first digit carries
bits 255..252; stored as the 32 bytes of that text, in order. PDQ sets a bit for each DCT
coefficient strictly above the median of 256, so a real hash has exactly 128 bits set unless
values tie: more than 128 is impossible, and far fewer means a forged or degenerate hash.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from registry.derivatives import DERIVED_VIEW_KINDS, DERIVED_VIEW_NAMES
from registry.exceptions import RequestRefused, TooManyImages

HASH_BITS = 256
HASH_BYTES = 32
HASH_HEX_DIGITS = 64
# A match is a Hamming distance of at most this many bits (Meta's recommended PDQ threshold).
MATCH_DISTANCE = 31
# Fewer bits set than this cannot come from a real image of usable quality: PDQ thresholds at the
# median, so only ties (flat regions of the DCT) lower the count below 128.
MIN_BITS_SET = 96
MAX_BITS_SET = 128
# Photos below this quality are too plain or too small to be protected reliably.
MIN_QUALITY = 50
MAX_QUALITY = 100

# The eight dihedral variants, in the order pdqhash.compute_dihedral returns them.
DIHEDRAL_VARIANTS: tuple[str, ...] = (
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flip_tb",
    "flip_lr",
    "transpose",
    "antitranspose",
)

_HEX = re.compile(r"[0-9a-fA-F]{64}")


class HashError(enum.StrEnum):
    """Stable codes for each reason a hash or an image's hash set is refused."""

    MALFORMED = "hash_malformed"
    ALL_ZERO = "hash_all_zero"
    TOO_MANY_BITS = "hash_too_many_bits"
    TOO_FEW_BITS = "hash_too_few_bits"
    QUALITY_INVALID = "quality_invalid"
    QUALITY_TOO_LOW = "quality_too_low"
    VARIANT_COUNT = "hash_variant_count"
    # Within the match distance of an allow-listed hash (registry.services.allowlist): a blank
    # image, a common meme, a known collision. Checked against the database, not here.
    ALLOW_LISTED = "hash_allow_listed"
    # The derived views of an image (registry.derivatives): an object of view name to hash.
    VIEWS_INVALID = "hash_views_invalid"
    VIEW_UNKNOWN = "hash_view_unknown"


_MESSAGES: dict[HashError, str] = {
    HashError.MALFORMED: "A PDQ hash is exactly 64 hexadecimal digits.",
    HashError.ALL_ZERO: "The all-zero hash comes from a blank or unreadable image.",
    HashError.TOO_MANY_BITS: "A PDQ hash has at most 128 bits set.",
    HashError.TOO_FEW_BITS: f"A PDQ hash of a real photo has at least {MIN_BITS_SET} bits set.",
    HashError.QUALITY_INVALID: "Quality is a whole number from 0 to 100.",
    HashError.QUALITY_TOO_LOW: f"Photos of quality below {MIN_QUALITY} are too plain to protect.",
    HashError.VARIANT_COUNT: "Each image needs its 8 dihedral hashes, the original first.",
    HashError.ALLOW_LISTED: (
        "This hash is within the match distance of a known common or blank image "
        "(the registry's allow-list): it cannot be registered."
    ),
    HashError.VIEWS_INVALID: (
        "views is an object of derived view names to their hashes, each name at most once "
        "(registry.derivatives), or absent."
    ),
    HashError.VIEW_UNKNOWN: "views names a view the registry does not know (registry.derivatives).",
}


class InvalidHash(ValueError):  # noqa: N818 - reads as the domain's word, like Django's ValidationError
    """A hash, a quality or a set of variants that the registry refuses (HTTP status 422).

    ``code`` is a stable machine-readable reason; ``index`` locates the offending value in a
    list when there is one, and ``image`` the image it belongs to in a list of images.
    """

    status = 422

    def __init__(
        self,
        code: HashError,
        index: int | None = None,
        *,
        image: int | None = None,
        view: str | None = None,
    ) -> None:
        super().__init__(_MESSAGES[code])
        self.code = code
        self.index = index
        self.image = image
        self.view = view

    def at_image(self, image: int) -> InvalidHash:
        """The same error, located in the image at position ``image`` of a request."""
        return InvalidHash(self.code, self.index, image=image, view=self.view)

    @property
    def details(self) -> dict[str, int | str]:
        """Where the refused value is: ``index``, ``image`` and ``view`` when known."""
        located: dict[str, int | str | None] = {
            "index": self.index,
            "image": self.image,
            "view": self.view,
        }
        return {name: value for name, value in located.items() if value is not None}

    @property
    def message(self) -> str:
        return _MESSAGES[self.code]


def popcount(value: bytes) -> int:
    """Return the number of bits set in ``value``."""
    return int.from_bytes(value, "big").bit_count()


def distance(a: bytes, b: bytes) -> int:
    """Return the Hamming distance between two 32-byte hashes."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def parse_hash(text: object) -> bytes:
    """Parse and validate one hash in text form; return its 32 bytes.

    Accepts upper or lower case. Raises InvalidHash for anything that is not 64 hex digits, for
    the all-zero hash, and for a count of bits set that no real PDQ hash has.
    """
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        raise InvalidHash(HashError.MALFORMED)
    value = bytes.fromhex(text)
    check_bits(value)
    return value


def check_bits(value: bytes) -> None:
    """Raise InvalidHash unless ``value`` has a count of bits set that a real PDQ hash can have."""
    bits = popcount(value)
    if bits == 0:
        raise InvalidHash(HashError.ALL_ZERO)
    if bits > MAX_BITS_SET:
        raise InvalidHash(HashError.TOO_MANY_BITS)
    if bits < MIN_BITS_SET:
        raise InvalidHash(HashError.TOO_FEW_BITS)


def format_hash(value: bytes) -> str:
    """Return the text form (64 lowercase hex digits) of a 32-byte hash."""
    if len(value) != HASH_BYTES:
        raise InvalidHash(HashError.MALFORMED)
    return value.hex()


def parse_quality(value: object) -> int:
    """Validate a PDQ quality (an integer from 0 to 100, at least MIN_QUALITY to be accepted)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidHash(HashError.QUALITY_INVALID)
    if not 0 <= value <= MAX_QUALITY:
        raise InvalidHash(HashError.QUALITY_INVALID)
    if value < MIN_QUALITY:
        raise InvalidHash(HashError.QUALITY_TOO_LOW)
    return value


@dataclass(frozen=True, slots=True)
class DihedralHashes:
    """The eight hashes of one image, in DIHEDRAL_VARIANTS order, its quality, and its derived
    views (registry.derivatives) as (view name, hash) pairs in the order sent."""

    hashes: tuple[bytes, ...]
    quality: int
    views: tuple[tuple[str, bytes], ...] = ()

    def by_variant(self) -> list[tuple[str, bytes]]:
        """Every hash of the image with its variant: the dihedral ones, then the views."""
        return [*zip(DIHEDRAL_VARIANTS, self.hashes, strict=True), *self.views]


def parse_views(value: object) -> tuple[tuple[str, bytes], ...]:
    """Parse an image's derived views: absent (None) or an object of view name to hash.

    Raises InvalidHash: ``hash_views_invalid`` for anything else or too many views,
    ``hash_view_unknown`` (with ``view``) for a name registry.derivatives does not define, and
    the hash's own error (with ``view``) for a bad hash.
    """
    if value is None:
        return ()
    if not isinstance(value, Mapping) or len(value) > len(DERIVED_VIEW_NAMES):
        raise InvalidHash(HashError.VIEWS_INVALID)
    parsed: list[tuple[str, bytes]] = []
    for name, text in value.items():
        if name not in DERIVED_VIEW_KINDS:
            raise InvalidHash(HashError.VIEW_UNKNOWN, view=str(name)[:16])
        try:
            parsed.append((name, parse_hash(text)))
        except InvalidHash as error:
            raise InvalidHash(error.code, view=name) from None
    return tuple(parsed)


def parse_dihedral(hashes: object, quality: object, views: object = None) -> DihedralHashes:
    """Parse one image's 8 dihedral hashes (original first), its quality and its derived views
    (parse_views).

    Raises InvalidHash; for a bad hash, ``index`` is its position in ``hashes``.
    """
    if not isinstance(hashes, Sequence) or isinstance(hashes, str | bytes):
        raise InvalidHash(HashError.VARIANT_COUNT)
    if len(hashes) != len(DIHEDRAL_VARIANTS):
        raise InvalidHash(HashError.VARIANT_COUNT)
    parsed: list[bytes] = []
    for index, text in enumerate(hashes):
        try:
            parsed.append(parse_hash(text))
        except InvalidHash as error:
            raise InvalidHash(error.code, index=index) from None
    return DihedralHashes(
        hashes=tuple(parsed), quality=parse_quality(quality), views=parse_views(views)
    )


def parse_images(items: Sequence[object], *, limit: int) -> list[DihedralHashes]:
    """Parse the images of one request, each ``{"hashes": [8 hashes], "quality": n}`` with an
    optional ``"views": {name: hash}`` (registry.derivatives).

    Raises TooManyImages past ``limit`` images, RequestRefused (``invalid_request``) for an
    item that is not an object, and InvalidHash located at the image (``image``) and the
    variant (``index``) that is refused.
    """
    if len(items) > limit:
        raise TooManyImages(details={"max_images_per_request": limit})
    parsed: list[DihedralHashes] = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise RequestRefused(400, "invalid_request", details={"image": position})
        try:
            parsed.append(
                parse_dihedral(item.get("hashes"), item.get("quality"), item.get("views"))
            )
        except InvalidHash as error:
            raise error.at_image(position) from None
    return parsed


def fingerprint(value: bytes) -> str:
    """Return a short label of a hash for receipts (12 hex digits of its SHA-256).

    A digest rather than a prefix, so that a receipt reveals none of the hash's bits, yet a person
    who hashes the same photo again can recompute it and tell their photos apart.
    """
    return hashlib.sha256(value).hexdigest()[:12]


def truncated(value: bytes) -> str:
    """Return the first 8 hex digits of a hash followed by an ellipsis, for the admin."""
    return value.hex()[:8] + "\u2026"

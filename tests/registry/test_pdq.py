"""Every rule of hash validation (registry.pdq), checked without a database."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import pdq
from registry.pdq import HashError, InvalidHash
from tests.factories import flip_bits, random_hash

VALID = random_hash(random.Random(1)).hex()


def test_parse_hash_accepts_lowercase_and_returns_32_bytes() -> None:
    assert pdq.parse_hash(VALID) == bytes.fromhex(VALID)


def test_parse_hash_accepts_uppercase_and_formats_lowercase() -> None:
    value = pdq.parse_hash(VALID.upper())
    assert pdq.format_hash(value) == VALID


@pytest.mark.parametrize(
    "text",
    [VALID[:-1], VALID + "0", VALID[:-1] + "g", " " + VALID[1:], "", "0x" + VALID[2:], None, 12],
)
def test_parse_hash_rejects_anything_but_64_hex_digits(text: object) -> None:
    with pytest.raises(InvalidHash) as raised:
        pdq.parse_hash(text)
    assert raised.value.code == HashError.MALFORMED


def test_parse_hash_rejects_the_all_zero_hash() -> None:
    with pytest.raises(InvalidHash) as raised:
        pdq.parse_hash("0" * 64)
    assert raised.value.code == "hash_all_zero"


def test_parse_hash_rejects_more_than_128_bits_set() -> None:
    text = random_hash(random.Random(2), bits_set=129).hex()
    with pytest.raises(InvalidHash) as raised:
        pdq.parse_hash(text)
    assert raised.value.code == "hash_too_many_bits"
    assert pdq.parse_hash(random_hash(random.Random(2), bits_set=128).hex())


def test_parse_hash_rejects_far_fewer_bits_than_a_real_hash() -> None:
    with pytest.raises(InvalidHash) as raised:
        pdq.parse_hash(random_hash(random.Random(3), bits_set=pdq.MIN_BITS_SET - 1).hex())
    assert raised.value.code == "hash_too_few_bits"
    assert pdq.parse_hash(random_hash(random.Random(3), bits_set=pdq.MIN_BITS_SET).hex())


@pytest.mark.parametrize(("quality", "code"), [(49, "quality_too_low"), (0, "quality_too_low")])
def test_parse_quality_rejects_low_quality(quality: int, code: str) -> None:
    with pytest.raises(InvalidHash) as raised:
        pdq.parse_quality(quality)
    assert raised.value.code == code


@pytest.mark.parametrize("quality", [-1, 101, 87.5, "87", True, None])
def test_parse_quality_rejects_values_that_are_not_a_quality(quality: object) -> None:
    with pytest.raises(InvalidHash) as raised:
        pdq.parse_quality(quality)
    assert raised.value.code == "quality_invalid"


@pytest.mark.parametrize("quality", [50, 87, 100])
def test_parse_quality_accepts_50_to_100(quality: int) -> None:
    assert pdq.parse_quality(quality) == quality


def test_parse_dihedral_returns_variants_in_pdqhash_order() -> None:
    rng = random.Random(4)
    texts = [random_hash(rng).hex() for _ in range(8)]
    parsed = pdq.parse_dihedral(texts, 90)
    assert [variant for variant, _ in parsed.by_variant()] == [
        "original", "rot90", "rot180", "rot270", "flip_tb", "flip_lr", "transpose", "antitranspose",
    ]  # fmt: skip
    assert [value.hex() for value in parsed.hashes] == texts


@pytest.mark.parametrize("count", [0, 1, 7, 9])
def test_parse_dihedral_requires_exactly_eight_hashes(count: int) -> None:
    texts = [VALID] * count
    with pytest.raises(InvalidHash) as raised:
        pdq.parse_dihedral(texts, 90)
    assert raised.value.code == "hash_variant_count"


def test_parse_dihedral_rejects_a_string_in_place_of_a_list() -> None:
    with pytest.raises(InvalidHash) as raised:
        pdq.parse_dihedral(VALID, 90)
    assert raised.value.code == "hash_variant_count"


def test_parse_dihedral_locates_the_bad_hash() -> None:
    texts = [VALID] * 8
    texts[5] = "0" * 64
    with pytest.raises(InvalidHash) as raised:
        pdq.parse_dihedral(texts, 90)
    assert (raised.value.code, raised.value.index) == ("hash_all_zero", 5)


def test_distance_counts_differing_bits() -> None:
    value = random_hash(random.Random(5))
    for count in (0, 1, 31, 32, 200):
        assert pdq.distance(value, flip_bits(value, count, random.Random(count))) == count


def test_fingerprint_is_short_and_reveals_no_prefix_of_the_hash() -> None:
    value = bytes.fromhex(VALID)
    assert len(pdq.fingerprint(value)) == 12
    assert not VALID.startswith(pdq.fingerprint(value)[:4])
    assert pdq.truncated(value) == VALID[:8] + "\u2026"


@given(st.text(max_size=80))
def test_parse_hash_never_raises_anything_but_invalid_hash(text: str) -> None:
    try:
        value = pdq.parse_hash(text)
    except InvalidHash as error:
        assert error.code in set(HashError)  # noqa: PT017 - a property over any outcome
    else:
        assert len(value) == 32
        assert pdq.MIN_BITS_SET <= pdq.popcount(value) <= pdq.MAX_BITS_SET


@given(st.binary(min_size=32, max_size=32))
def test_parse_hash_accepts_exactly_the_plausible_bit_counts(value: bytes) -> None:
    bits = pdq.popcount(value)
    plausible = pdq.MIN_BITS_SET <= bits <= pdq.MAX_BITS_SET
    try:
        pdq.parse_hash(value.hex())
    except InvalidHash:
        assert not plausible
    else:
        assert plausible

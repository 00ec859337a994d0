"""Case references and secrets: random, typeable, forgiving of how a person copies them."""

from __future__ import annotations

from registry import codes


def test_new_secret_has_80_random_bits_in_four_groups() -> None:
    secret = codes.new_secret()
    groups = secret.split("-")
    assert [len(group) for group in groups] == [4, 4, 4, 4]
    assert all(char in codes.ALPHABET for char in "".join(groups))
    assert len(set(codes.ALPHABET)) ** codes.SECRET_CHARS >= 2**80


def test_new_secrets_and_references_do_not_repeat() -> None:
    assert len({codes.new_secret() for _ in range(2000)}) == 2000
    assert len({codes.new_reference() for _ in range(2000)}) == 2000


def test_normalise_secret_forgives_case_spaces_and_lookalike_letters() -> None:
    assert codes.normalise_secret(" 8f2k qx7m-3dwa pozn ") == "8F2K-QX7M-3DWA-P0ZN"
    assert codes.normalise_secret("1IL0-OOOO-AAAA-BBBB") == "1110-0000-AAAA-BBBB"


def test_normalise_secret_rejects_wrong_lengths_and_letters() -> None:
    assert codes.normalise_secret("8F2K-QX7M-3DWA") is None
    assert codes.normalise_secret("8F2K-QX7M-3DWA-P9ZU") is None  # U is not in the alphabet
    assert codes.normalise_secret(None) is None
    assert codes.normalise_secret("x" * 1000) is None


def test_normalise_reference_accepts_it_with_or_without_prefix() -> None:
    reference = codes.new_reference()
    assert codes.normalise_reference(reference.lower()) == reference
    assert codes.normalise_reference(reference.removeprefix("RMP-")) == reference
    assert codes.normalise_reference("RMP-12345") is None

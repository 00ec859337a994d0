"""Properties of the parsers hostile input reaches first: hashes, case secrets, feed cursors.

tests/registry/test_pdq.py and tests/api/views/test_sync.py hold the properties over text; these
extend them to any object a JSON body can carry, to the round trips, and to the case secret
check (few examples there: each check costs an Argon2 verification, by design).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.cursors import CursorInvalid, cursor_encode, cursor_parse
from registry import codes, pdq
from registry.exceptions import CaseAccessDenied
from registry.pdq import HashError, InvalidHash
from registry.services.cases import case_check_secret
from tests.factories import RegisteredCase, register_case

# Whatever json.loads can hand a view, and a few things it cannot (bytes, NUL characters).
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=80)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=9) | st.dictionaries(st.text(), children),
    max_leaves=12,
)
HEX_LIKE = st.text(alphabet="0123456789abcdefABCDEF \n\t-x\x00\u0660", min_size=60, max_size=68)
PLAUSIBLE_HASHES = st.binary(min_size=32, max_size=32).filter(
    lambda value: pdq.MIN_BITS_SET <= pdq.popcount(value) <= pdq.MAX_BITS_SET
)


# --- Hashes ---------------------------------------------------------------------------------


@given(st.one_of(JSON_VALUES, HEX_LIKE))
@example("0" * 63 + "\n")
@example("\u0660" * 64)
@example(b"\x0f" * 32)
def test_any_value_parses_to_a_plausible_hash_or_is_refused_with_a_hash_code(value: Any) -> None:
    refused: InvalidHash | None = None
    try:
        parsed = pdq.parse_hash(value)
    except InvalidHash as error:
        refused = error
    if refused is not None:
        assert refused.code in set(HashError)
        assert refused.message
    else:
        assert isinstance(value, str)
        assert len(parsed) == 32
        assert pdq.format_hash(parsed) == value.lower()


@given(PLAUSIBLE_HASHES)
def test_a_hash_round_trips_through_its_text_in_either_case(value: bytes) -> None:
    text = pdq.format_hash(value)

    assert text == text.lower()
    assert len(text) == 64
    assert pdq.parse_hash(text) == value
    assert pdq.parse_hash(text.upper()) == value


@given(st.binary(max_size=64).filter(lambda value: len(value) != 32))
def test_only_32_bytes_format_as_a_hash(value: bytes) -> None:
    with pytest.raises(InvalidHash) as refused:
        pdq.format_hash(value)

    assert refused.value.code == HashError.MALFORMED


@given(JSON_VALUES, JSON_VALUES)
@example(["0" * 64] * 8, 90)
@example({"0": 1}, 90)
@example([None] * 8, True)
def test_any_image_parses_or_is_refused_with_a_hash_code(hashes: Any, quality: Any) -> None:
    refused: InvalidHash | None = None
    try:
        image = pdq.parse_dihedral(hashes, quality)
    except InvalidHash as error:
        refused = error
    if refused is not None:
        assert refused.code in set(HashError)
        if refused.index is not None:
            assert 0 <= refused.index < len(pdq.DIHEDRAL_VARIANTS)
    else:
        assert len(image.hashes) == len(pdq.DIHEDRAL_VARIANTS)
        assert pdq.MIN_QUALITY <= image.quality <= 100


@given(st.lists(PLAUSIBLE_HASHES, min_size=8, max_size=8), st.integers(pdq.MIN_QUALITY, 100))
def test_eight_plausible_hashes_and_a_usable_quality_always_parse(
    values: list[bytes], quality: int
) -> None:
    image = pdq.parse_dihedral([value.hex() for value in values], quality)

    assert list(image.hashes) == values
    assert image.quality == quality


# --- Case secrets ---------------------------------------------------------------------------

# Each example costs an Argon2 check: few, but the ones that matter are pinned as examples.
ARGON2_EXAMPLES = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def person(db: None) -> RegisteredCase:
    return register_case(images=1)


@pytest.mark.django_db
@ARGON2_EXAMPLES
@given(reference=JSON_VALUES, secret=JSON_VALUES)
@example(reference="RMP-\x00", secret="\x00")
@example(reference="RMP-" + "0" * 10, secret="0000-0000-0000-0000")
@example(reference="ß" * 64, secret="ﬀ" * 64)
@example(reference=["RMP"], secret={"secret": 1})
def test_any_reference_and_secret_are_refused_with_the_one_error(
    person: RegisteredCase, reference: Any, secret: Any
) -> None:
    with pytest.raises(CaseAccessDenied):
        case_check_secret(reference=reference, secret=secret)


@pytest.mark.django_db
@ARGON2_EXAMPLES
@given(data=st.data())
def test_a_wrong_secret_for_the_right_reference_is_refused(
    person: RegisteredCase, data: st.DataObject
) -> None:
    secret = data.draw(st.one_of(JSON_VALUES, st.just(codes.new_secret())))
    if codes.normalise_secret(secret) == codes.normalise_secret(person.secret):
        return
    with pytest.raises(CaseAccessDenied):
        case_check_secret(reference=person.case.reference, secret=secret)


def _loosely(text: str, data: st.DataObject) -> str:
    """``text`` as a person may type it: any case, spaces or no dashes, O for 0, I or L for 1."""
    typed = []
    for char in text:
        if char == "-":
            typed.append(data.draw(st.sampled_from(["-", "", " ", " - "])))
            continue
        if char == "0":
            char = data.draw(st.sampled_from(["0", "O", "o"]))
        elif char == "1":
            char = data.draw(st.sampled_from(["1", "I", "i", "L", "l"]))
        elif data.draw(st.booleans()):
            char = char.lower()
        typed.append(char)
    return (
        data.draw(st.sampled_from(["", " ", "\t"]))
        + "".join(typed)
        + "\n" * data.draw(st.integers(0, 1))
    )


@pytest.mark.django_db
@ARGON2_EXAMPLES
@given(data=st.data())
def test_the_right_secret_always_opens_its_case_however_it_is_typed(
    person: RegisteredCase, data: st.DataObject
) -> None:
    reference = _loosely(person.case.reference, data)
    secret = _loosely(person.secret, data)

    assert case_check_secret(reference=reference, secret=secret) == person.case


# --- Feed cursors ---------------------------------------------------------------------------


@given(JSON_VALUES)
@example("c1.AAAAAAAAAAA\n")
@example("c1.AAAAAAAAAAB")
@example("c1.gAAAAAAAAAA")
@example("c1.\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660")
def test_any_value_parses_to_its_own_cursor_or_is_refused_with_400(value: Any) -> None:
    refused: CursorInvalid | None = None
    try:
        change_id = cursor_parse(value)
    except CursorInvalid as error:
        refused = error
    if refused is not None:
        assert refused.status_code == 400
        assert refused.code == "cursor_invalid"
    else:
        assert cursor_encode(change_id) == value


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_distinct_positions_have_distinct_cursors(first: int, second: int) -> None:
    assert (cursor_encode(first) == cursor_encode(second)) == (first == second)


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=2**63)))
def test_positions_outside_a_bigint_have_no_cursor(change_id: int) -> None:
    with pytest.raises(ValueError, match="bigint"):
        cursor_encode(change_id)

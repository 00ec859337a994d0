"""Guessing a case secret: failed checks limited per client and per reference, owner unharmed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import codes, ratelimits
from registry.exceptions import CaseAccessDenied, CaseCheckLimited
from registry.services.cases import case_check_secret, case_check_secret_limited
from tests.factories import RegisteredCase

pytestmark = pytest.mark.django_db

WRONG_SECRET = "AAAA-BBBB-CCCC-DDDD"
ATTACKER = "a" * 32
OWNER = "b" * 32


@pytest.fixture(autouse=True)
def window_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A clock for the limits' hourly windows, set at the start of a window."""
    clock = [1_800_000_000.0 - 1_800_000_000 % 3600]
    monkeypatch.setattr(ratelimits, "time", SimpleNamespace(time=lambda: clock[0]))
    return clock


def _fail(reference: str, client: str, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(CaseAccessDenied):
            case_check_secret_limited(reference=reference, secret=WRONG_SECRET, client=client)


def test_a_client_is_refused_after_the_reference_budget_of_failures(
    person: RegisteredCase,
) -> None:
    _fail(person.case.reference, ATTACKER, times=10)
    with pytest.raises(CaseCheckLimited) as raised:
        case_check_secret_limited(
            reference=person.case.reference, secret=person.secret, client=ATTACKER
        )
    assert raised.value.retry_after == 3600


def test_the_owner_still_gets_in_while_an_attacker_is_refused(person: RegisteredCase) -> None:
    _fail(person.case.reference, ATTACKER, times=10)
    with pytest.raises(CaseCheckLimited):
        case_check_secret_limited(
            reference=person.case.reference, secret=WRONG_SECRET, client=ATTACKER
        )
    case = case_check_secret_limited(
        reference=person.case.reference, secret=person.secret, client=OWNER
    )
    assert case == person.case


def test_a_fresh_client_gets_one_guess_at_a_limited_reference(person: RegisteredCase) -> None:
    _fail(person.case.reference, ATTACKER, times=10)
    _fail(person.case.reference, "c" * 32)
    with pytest.raises(CaseCheckLimited):
        case_check_secret_limited(
            reference=person.case.reference, secret=person.secret, client="c" * 32
        )


def test_a_client_is_refused_on_every_reference_past_its_own_budget(
    person: RegisteredCase,
) -> None:
    for number in range(20):
        _fail(f"RMP-00000-{number:05d}", ATTACKER)
    with pytest.raises(CaseCheckLimited):
        case_check_secret_limited(
            reference=person.case.reference, secret=person.secret, client=ATTACKER
        )
    assert (
        case_check_secret_limited(
            reference=person.case.reference, secret=person.secret, client=OWNER
        )
        == person.case
    )


def test_an_unknown_reference_is_limited_exactly_like_a_wrong_secret(
    person: RegisteredCase,
) -> None:
    unknown = "RMP-00000-00000"
    _fail(unknown, ATTACKER, times=10)
    _fail(person.case.reference, ATTACKER, times=10)
    refusals = []
    for reference in (unknown, person.case.reference):
        with pytest.raises(CaseCheckLimited) as raised:
            case_check_secret_limited(reference=reference, secret=WRONG_SECRET, client=ATTACKER)
        refusals.append((raised.value.code, raised.value.message, raised.value.retry_after))
    assert refusals[0] == refusals[1]


def test_successes_are_not_counted(person: RegisteredCase) -> None:
    for _ in range(30):
        case_check_secret_limited(
            reference=person.case.reference, secret=person.secret, client=OWNER
        )
    _fail(person.case.reference, OWNER, times=9)
    assert (
        case_check_secret_limited(
            reference=person.case.reference, secret=person.secret, client=OWNER
        )
        == person.case
    )


def test_the_limits_end_with_their_window(
    person: RegisteredCase, window_clock: list[float]
) -> None:
    _fail(person.case.reference, ATTACKER, times=10)
    window_clock[0] += 3600
    assert (
        case_check_secret_limited(
            reference=person.case.reference, secret=person.secret, client=ATTACKER
        )
        == person.case
    )


def test_the_cache_names_neither_the_reference_nor_a_raw_client(person: RegisteredCase) -> None:
    _fail(person.case.reference, ATTACKER)
    keys = ratelimits._case_check_keys(reference=person.case.reference, client=ATTACKER)
    assert all(person.case.reference not in key for key in keys)


# --- The check itself, as properties ---------------------------------------------------------

_SEPARATORS = st.sampled_from(["", "-", " ", "  ", "\t"])
_READ_ALIKE = {"0": "0Oo", "1": "1IiLl"}


@st.composite
def _typings(draw: st.DrawFn, secret: str) -> str:
    """One way a person could type ``secret``: any case, spaces or dashes, O for 0, I/L for 1."""
    typed = []
    for position, char in enumerate(secret.replace("-", "")):
        choices = _READ_ALIKE.get(char, char.upper() + char.lower())
        typed.append(draw(st.sampled_from(choices)))
        if position % 4 == 3 and position < 15:
            typed.append(draw(_SEPARATORS))
    return draw(st.sampled_from(["", " "])) + "".join(typed) + draw(st.sampled_from(["", " "]))


_PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_PROPERTY
@given(data=st.data())
def test_any_typing_of_the_secret_is_accepted(person: RegisteredCase, data: st.DataObject) -> None:
    typed = data.draw(_typings(person.secret))
    assert codes.normalise_secret(typed) == person.secret
    assert case_check_secret(reference=person.case.reference, secret=typed) == person.case


@_PROPERTY
@given(typed=st.text(max_size=40))
def test_anything_that_does_not_normalise_to_the_secret_is_refused(
    person: RegisteredCase, typed: str
) -> None:
    if codes.normalise_secret(typed) == person.secret:
        return
    with pytest.raises(CaseAccessDenied):
        case_check_secret(reference=person.case.reference, secret=typed)


@_PROPERTY
@given(data=st.data(), position=st.integers(min_value=0, max_value=15))
def test_a_secret_one_character_off_is_refused(
    person: RegisteredCase, data: st.DataObject, position: int
) -> None:
    compact = list(person.secret.replace("-", ""))
    compact[position] = data.draw(
        st.sampled_from([char for char in codes.ALPHABET if char != compact[position]])
    )
    with pytest.raises(CaseAccessDenied):
        case_check_secret(reference=person.case.reference, secret="".join(compact))


# --- The people's pages ----------------------------------------------------------------------


def _status(address: str, reference: str, secret: str, language: str = "en") -> str:
    response = Client(REMOTE_ADDR=address).post(
        "/status/withdraw",
        {"case_reference": reference, "case_secret": secret, "confirm": "yes"},
        headers={"accept-language": language},
    )
    return f"{response.status_code} {response.content.decode()}"


def test_the_pages_refuse_a_guessing_client_in_its_language_and_let_the_owner_withdraw(
    person: RegisteredCase,
) -> None:
    for _ in range(10):
        assert _status("203.0.113.9", person.case.reference, WRONG_SECRET).startswith("403 ")
    refused = _status("203.0.113.9", person.case.reference, WRONG_SECRET, "fr")
    assert refused.startswith("429 ")
    assert "Trop de tentatives erronées pour ce dossier." in refused
    assert _status("203.0.113.9", person.case.reference, person.secret).startswith("429 ")
    assert _status("198.51.100.4", person.case.reference, person.secret).startswith("200 ")
    person.case.refresh_from_db()
    assert person.case.withdrawn_at is not None

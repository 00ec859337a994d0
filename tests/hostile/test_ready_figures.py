"""The public /ready says ready or not; only the operators' token reads the index's figures.

The figures move with every registration (eight hashes a photo) and every withdrawal (one
change): shown in public, anyone polling them would watch people register and withdraw.
"""

from __future__ import annotations

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from registry.matching.follower import Matcher
from registry.services.cases import case_withdraw
from tests.factories import register_case

pytestmark = pytest.mark.django_db

TOKEN = "an operators' token for /ready"
FIGURES = {"index_size", "index_bytes", "applied_change", "latest_change", "changes_behind"}


@pytest.fixture(autouse=True)
def _token(settings: SettingsWrapper) -> None:
    settings.READY_TOKEN = TOKEN


def test_the_public_answer_does_not_move_when_people_register_or_withdraw(
    client: Client, match_index: Matcher
) -> None:
    before = client.get("/ready")
    registered = register_case(images=1)
    match_index.catch_up()
    after_registering = client.get("/ready")
    case_withdraw(case=registered.case)
    match_index.catch_up()
    after_withdrawing = client.get("/ready")

    assert before.status_code == after_registering.status_code == 200
    assert before.json() == after_registering.json() == after_withdrawing.json() == {"ready": True}


def test_the_operators_token_reads_the_figures(client: Client, match_index: Matcher) -> None:
    register_case(images=1)
    match_index.catch_up()

    answer = client.get("/ready", headers={"X-Ready-Token": TOKEN}).json()

    assert set(answer) >= FIGURES
    assert answer["index_size"] == 8
    assert answer["changes_behind"] == 0


@pytest.mark.parametrize("offered", ["", "wrong", TOKEN + "x", TOKEN.upper()])
def test_a_wrong_token_reads_no_figure(client: Client, match_index: Matcher, offered: str) -> None:
    answer = client.get("/ready", headers={"X-Ready-Token": offered})

    assert answer.json() == {"ready": True}


def test_without_a_configured_token_nobody_reads_the_figures(
    client: Client, match_index: Matcher, settings: SettingsWrapper
) -> None:
    settings.READY_TOKEN = ""

    assert client.get("/ready", headers={"X-Ready-Token": ""}).json() == {"ready": True}


def test_not_ready_is_503_in_public_too(client: Client) -> None:
    answer = client.get("/ready")

    assert answer.status_code == 503
    assert answer.json() == {"ready": False}

"""The people's pages answer, in both languages."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client
from django.utils.html import escape
from pytest_django.fixtures import Settings as SettingsWrapper

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}


@pytest.mark.django_db
def test_home_page_is_served() -> None:
    response = Client().get("/")
    assert response.status_code == 200
    assert b"Stop your photos" in response.content


def test_health_answers_ok() -> None:
    response = Client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- Who runs the registry: the legal notice and the privacy notice --------------------------

OPERATOR = {
    "OPERATOR_NAME": "Association Exemple",
    "OPERATOR_ADDRESS": "1 rue de l'Exemple, 75001 Paris",
    "OPERATOR_CONTACT_EMAIL": "contact@registry.example.org",
    "OPERATOR_PUBLICATION_DIRECTOR": "Camille Exemple",
    "OPERATOR_HOST": "Hébergeur Exemple, 2 avenue de l'Exemple, 59100 Roubaix",
}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/legal", "/privacy"])
def test_the_notices_say_plainly_what_the_operator_must_fill_in(
    path: str, settings: SettingsWrapper
) -> None:
    for name in OPERATOR:
        setattr(settings, name, "")

    english = Client().get(path, headers=ENGLISH).content.decode()
    french = Client().get(path, headers=FRENCH).content.decode()

    assert 'data-unset="OPERATOR_NAME"' in english
    assert "To be filled in by the operator before production (OPERATOR_NAME)" in english
    assert "À compléter par l\u2019exploitant avant la mise en production" in french


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/legal", "/privacy"])
def test_the_notices_name_the_operator_once_set(path: str, settings: SettingsWrapper) -> None:
    for name, value in OPERATOR.items():
        setattr(settings, name, value)

    html = Client().get(path, headers=ENGLISH).content.decode()

    assert "data-unset" not in html
    assert "Association Exemple" in html
    assert 'href="mailto:contact@registry.example.org"' in html
    assert escape(OPERATOR["OPERATOR_HOST"]) in html


@pytest.mark.django_db
def test_the_privacy_notice_gives_the_basis_periods_rights_and_authority(
    settings: SettingsWrapper,
) -> None:
    settings.TOMBSTONE_RETENTION_DAYS = 60
    english = Client().get("/privacy", headers=ENGLISH).content.decode()
    french = Client().get("/privacy", headers=FRENCH).content.decode()

    assert "sex life" in english
    assert "explicit consent (articles 6(1)(a) and 9(2)(a) of the GDPR)" in english
    assert "the fingerprints are kept 60 days more" in english
    assert "Never your photos, your name, your contact details or your IP address." in english
    assert "withdraw your consent" in english
    assert 'href="https://www.cnil.fr/fr/plaintes"' in english
    assert "CNIL" in english
    assert "consentement explicite" in french
    assert "conservées 60\u00a0jours de plus" in french
    assert "Vos droits" in french


@pytest.mark.django_db
def test_every_page_links_the_notices_from_its_footer() -> None:
    html = Client().get("/register", headers=FRENCH).content.decode()
    footer = html.split('<footer class="site-footer">', 1)[1]

    assert '<a href="/privacy">Politique de confidentialité</a>' in footer
    assert '<a href="/legal">Mentions légales</a>' in footer


@pytest.mark.django_db
def test_the_quick_exit_leaves_for_the_operators_neutral_site(settings: SettingsWrapper) -> None:
    settings.QUICK_EXIT_URL = "https://weather.example.org/"

    response = Client().get("/leave")

    assert response.status_code == 302
    assert response["Location"] == "https://weather.example.org/"
    assert "no-store" in response["Cache-Control"]


# --- Transparency ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_transparency_page_says_when_its_figures_were_computed() -> None:
    computed = dt.datetime(2026, 12, 1, 9, 15, 30, tzinfo=dt.UTC)
    with time_machine.travel(computed, tick=False):
        first = Client().get("/transparency", headers=ENGLISH).content.decode()
    with time_machine.travel(computed + dt.timedelta(minutes=2), tick=False):
        cached = Client().get("/transparency", headers=FRENCH).content.decode()

    assert 'data-computed-at="2026-12-01T09:15:30+00:00"' in first
    assert "These figures were computed on" in first
    # Two minutes later the figures come from the cache: the time is still theirs.
    assert 'data-computed-at="2026-12-01T09:15:30+00:00"' in cached
    assert "Ces chiffres ont été calculés le" in cached


@pytest.mark.django_db
def test_french_dates_write_the_first_of_the_month_1er_and_legends_a_narrow_space() -> None:
    with time_machine.travel(dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC), tick=False):
        french = Client().get("/transparency", headers=FRENCH).content.decode()
        cache.clear()
        english = Client().get("/transparency", headers=ENGLISH).content.decode()

    assert "au 1er décembre 2026" in french
    assert " 1 décembre" not in french
    assert "to 1 December 2026" in english
    # A legend's figure follows a narrow no-break space and a colon in French, a colon in English.
    assert re.search(r"</svg>\s*[^<]+\u202f: \d+</li>", french)
    assert re.search(r"</svg>\s*[^<\u202f]+: \d+</li>", english)

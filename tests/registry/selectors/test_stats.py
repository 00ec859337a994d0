"""Statistics: the daily series against a seeded scenario, the admin dashboard and its CSV, and
the public transparency page (English and French) that names no partner."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.utils import translation
from pytest_django import DjangoAssertNumQueries

from registry.charts import _day_label
from registry.models import Feedback, MatchCall, RegisteredImage
from registry.selectors.stats import DailyStats, daily_stats
from registry.services.cases import case_withdraw
from tests.conftest import PartnerPersona, staff_login
from tests.factories import register_case

DAY_1 = dt.datetime(2026, 11, 10, 10, 0, tzinfo=dt.UTC)
DAY_2 = dt.datetime(2026, 11, 11, 23, 59, tzinfo=dt.UTC)
TODAY = dt.date(2026, 11, 12)


@pytest.fixture
def scenario(partner_a: PartnerPersona, partner_b: PartnerPersona) -> None:
    """Two days of activity, seen from 12 November 2026 over seven days (6 to 12 November)."""
    with time_machine.travel(DAY_1, tick=False):
        first = register_case(images=2)
        register_case(images=1)
    with time_machine.travel(DAY_2, tick=False):
        third = register_case(images=3)
        case_withdraw(case=first.case)
    disputed = third.case.images.order_by("pk").first()
    assert disputed is not None
    RegisteredImage.objects.filter(pk=disputed.pk).update(status="disputed")
    for persona, purpose, hashes, matched, moment in [
        (partner_a, "publish", 4, 1, DAY_1),
        (partner_a, "ai_edit", 2, 2, DAY_2),
        (partner_b, "publish", 10, 0, DAY_2),
        (partner_b, "publish", 1, 1, DAY_2),
        (partner_b, "publish", 7, 7, DAY_1 - dt.timedelta(days=30)),  # before the period
    ]:
        MatchCall.objects.create(
            partner=persona.partner,
            key=persona.key,
            purpose=purpose,
            hashes=hashes,
            matched_hashes=matched,
            matches=matched,
            created_at=moment,
        )
    for verdict, moment in [("blocked", DAY_1), ("not_blocked", DAY_2), ("not_blocked", DAY_2)]:
        Feedback.objects.create(
            partner_id=partner_a.partner.pk, image=disputed, verdict=verdict, created_at=moment
        )


def _values(stats: DailyStats) -> dict[str, list[int]]:
    return {series.key: series.values for chart in stats.charts for series in chart.series}


@pytest.mark.django_db
def test_the_daily_series_count_the_seeded_scenario(
    scenario: None,
    partner_a: PartnerPersona,
    partner_b: PartnerPersona,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    with django_assert_max_num_queries(10):
        stats = daily_stats(days=7, with_partners=True, today=TODAY)
    assert stats.days[0] == dt.date(2026, 11, 6)
    assert stats.days[-1] == TODAY
    a, b = partner_a.partner.pk, partner_b.partner.pk
    assert _values(stats) == {
        "cases_registered": [0, 0, 0, 0, 2, 1, 0],
        "photos_registered": [0, 0, 0, 0, 3, 3, 0],
        "videos_registered": [0] * 7,
        "cases_withdrawn": [0, 0, 0, 0, 0, 1, 0],
        "photos_withdrawn": [0, 0, 0, 0, 0, 2, 0],
        "videos_withdrawn": [0] * 7,
        "match_calls:publish": [0, 0, 0, 0, 1, 2, 0],
        "match_calls:ai_edit": [0, 0, 0, 0, 0, 1, 0],
        "matches:publish": [0, 0, 0, 0, 1, 1, 0],
        "matches:ai_edit": [0, 0, 0, 0, 0, 2, 0],
        f"partner_calls:{a}": [0, 0, 0, 0, 1, 1, 0],
        f"partner_calls:{b}": [0, 0, 0, 0, 0, 2, 0],
        f"partner_matches:{a}": [0, 0, 0, 0, 1, 2, 0],
        f"partner_matches:{b}": [0, 0, 0, 0, 0, 1, 0],
        "feedback:blocked": [0, 0, 0, 0, 1, 0, 0],
        "feedback:not_blocked": [0, 0, 0, 0, 0, 2, 0],
        "feedback:pending_review": [0] * 7,
        "photos_matching": [0, 0, 0, 0, 1, 4, 4],
        "videos_matching": [0] * 7,
        "review_queue": [0, 0, 0, 0, 0, 1, 1],
    }
    labels = {str(s.label) for chart in stats.charts for s in chart.series}
    assert {"Platform A", "Platform B"} <= labels

    public = daily_stats(days=7, with_partners=False, today=TODAY)
    assert not any(key.startswith("partner_") for key in _values(public))
    assert {k: v for k, v in _values(stats).items() if not k.startswith("partner_")} == _values(
        public
    )


@pytest.mark.django_db
def test_the_period_is_kept_within_bounds(scenario: None) -> None:
    assert len(daily_stats(days=1, with_partners=False).days) == 7
    assert len(daily_stats(days=10_000, with_partners=False).days) == 366


@pytest.mark.django_db
def test_the_dashboard_draws_each_chart_and_exports_the_same_figures(
    scenario: None, superuser: User, partner_a: PartnerPersona
) -> None:
    client = staff_login(Client(), superuser)
    with time_machine.travel(dt.datetime(2026, 11, 12, 12, 0, tzinfo=dt.UTC), tick=False):
        page = client.get("/admin/statistics/?days=7")
        exported = client.get("/admin/statistics.csv?days=7")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="stats-chart"') == 9
    assert "<script" not in html.split('id="content-main"')[1]
    assert "Platform A" in html
    assert 'style="' not in html.split('id="content-main"')[1]  # the CSP allows no inline style

    assert exported.status_code == 200
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0] == ["day", "chart", "series", "label", "value"]
    assert ["2026-11-11", "match_calls", "match_calls:publish", "Before publishing", "2"] in rows
    assert ["2026-11-12", "review_queue", "review_queue", "Photos awaiting review", "1"] in rows
    assert [
        "2026-11-11",
        "partner_match_calls",
        f"partner_calls:{partner_a.partner.pk}",
        "Platform A",
        "1",
    ] in rows
    assert len(rows) == 1 + 7 * 20


@pytest.mark.parametrize("days", ["3", "367", "abc", "-7", ""])
@pytest.mark.django_db
def test_the_dashboard_refuses_a_period_out_of_bounds(superuser: User, days: str) -> None:
    client = staff_login(Client(), superuser)
    page = client.get(f"/admin/statistics/?days={days}")
    assert page.status_code == 400
    assert "days is a whole number from 7 to 366" in page.content.decode()
    assert client.get(f"/admin/statistics.csv?days={days}").status_code == 400


@pytest.mark.parametrize(
    ("language", "heading"),
    [
        ("en", "Transparency: the registry in figures"),
        ("fr", "Transparence\u202f: le registre en chiffres"),
    ],
)
@pytest.mark.django_db
def test_the_transparency_page_shows_the_figures_and_no_partner_name(
    scenario: None, language: str, heading: str
) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    with time_machine.travel(dt.datetime(2026, 11, 12, 12, 0, tzinfo=dt.UTC), tick=False):
        page = client.get("/transparency")
        exported = client.get("/transparency.csv")
        home = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<html lang="{language}">' in html
    assert heading in html
    assert html.count('class="stats-chart"') == 7
    assert 'href="/transparency"' in home.content.decode()  # linked from the footer
    text = html + exported.content.decode()
    for name in ["Platform A", "Platform B", "partner_calls", "partner_matches"]:
        assert name not in text
    assert "2026-11-11,match_calls,match_calls:publish," in exported.content.decode()
    assert "'unsafe-inline'" not in page["Content-Security-Policy"]
    main = html.split("<main")[1].split("</main>")[0]
    assert 'style="' not in main  # no inline style, which the CSP would refuse
    assert "<script" not in main


@pytest.mark.django_db
def test_the_transparency_figures_are_computed_once_for_many_visitors(
    scenario: None, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    first = Client(HTTP_ACCEPT_LANGUAGE="en").get("/transparency").content.decode()
    with django_assert_max_num_queries(0):
        again = Client(HTTP_ACCEPT_LANGUAGE="en").get("/transparency").content.decode()
        exported = Client().get("/transparency.csv")
    main = first.split("<main")[1].split("</main>")[0]
    assert main in again  # the same figures (the page's CSRF token differs)
    assert "Partner checks, by purpose" in again  # labels survive the cache
    assert exported.status_code == 200
    french = Client(HTTP_ACCEPT_LANGUAGE="fr").get("/transparency").content.decode()
    assert "Vérifications des partenaires, par finalité" in french  # translated when shown


def test_chart_days_are_written_in_full_with_the_french_first_of_the_month() -> None:
    with translation.override("fr"):
        assert _day_label(dt.date(2026, 12, 1)) == "1er décembre"
        assert _day_label(dt.date(2026, 12, 2)) == "2 décembre"
    with translation.override("en"):
        assert _day_label(dt.date(2026, 12, 1)) == "1 December"


@pytest.mark.django_db
def test_videos_are_counted_apart_from_photos() -> None:
    with time_machine.travel(DAY_1, tick=False):
        mixed = register_case(images=1, videos=1)
    with time_machine.travel(DAY_2, tick=False):
        register_case(images=0, videos=2)
        case_withdraw(case=mixed.case)

    values = _values(daily_stats(days=7, with_partners=False, today=TODAY))

    assert values["photos_registered"] == [0, 0, 0, 0, 1, 0, 0]
    assert values["videos_registered"] == [0, 0, 0, 0, 1, 2, 0]
    assert values["cases_withdrawn"] == [0, 0, 0, 0, 0, 1, 0]
    assert values["photos_withdrawn"] == [0, 0, 0, 0, 0, 1, 0]
    assert values["videos_withdrawn"] == [0, 0, 0, 0, 0, 1, 0]
    assert values["photos_matching"] == [0] * 7
    assert values["videos_matching"] == [0, 0, 0, 0, 0, 2, 2]
    with time_machine.travel(dt.datetime(2026, 11, 12, 12, 0, tzinfo=dt.UTC), tick=False):
        english = Client(HTTP_ACCEPT_LANGUAGE="en").get("/transparency").content.decode()
        french = Client(HTTP_ACCEPT_LANGUAGE="fr").get("/transparency").content.decode()
    assert "Videos registered" in english
    assert "Videos matching" in english
    assert "Vidéos enregistrées" in french
    assert "Vidéos retirées" in french
    assert "Une vidéo compte une fois" in french

"""The quick exit in a real Chromium: a click, the keyboard, or Escape three times leaves for
the operator's neutral site, and the page left is no longer in the history.

The neutral site is, here, a page of the live server itself: the tests reach nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect
from pytest_django.fixtures import Settings

from tests.browser.conftest import BrowsingLog, SiteOpener

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def open_register_from_home(site: SiteOpener, settings: Settings) -> tuple[Page, BrowsingLog]:
    page, log = site(locale="en-GB")
    settings.QUICK_EXIT_URL = log.origin + "/health"
    page.goto(log.origin + "/")
    page.get_by_role("navigation").get_by_role("link", name="Protect photos").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Protect my photos")
    expect(page.locator("[data-quick-exit][data-ready]")).to_be_attached()
    return page, log


def assert_left_without_a_trace(page: Page, log: BrowsingLog) -> None:
    expect(page).to_have_url(log.origin + "/health")
    # The register page was replaced: going back lands on the page before it.
    page.go_back()
    expect(page).to_have_url(log.origin + "/")
    assert log.foreign_requests() == []
    assert log.page_errors == []


def test_escape_pressed_three_times_leaves_the_site(site: SiteOpener, settings: Any) -> None:
    page, log = open_register_from_home(site, settings)

    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    expect(page).to_have_url(log.origin + "/register")
    page.keyboard.press("Escape")

    assert_left_without_a_trace(page, log)


def test_the_quick_exit_is_the_first_stop_after_the_skip_link(
    site: SiteOpener, settings: Any
) -> None:
    page, log = open_register_from_home(site, settings)

    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Tab")
    quick_exit = page.get_by_role("link", name="Leave quickly")
    expect(quick_exit).to_be_focused()
    page.keyboard.press("Enter")

    assert_left_without_a_trace(page, log)


def test_the_quick_exit_button_leaves_from_a_french_page(site: SiteOpener, settings: Any) -> None:
    page, log = site(locale="fr-FR")
    settings.QUICK_EXIT_URL = log.origin + "/health"
    page.goto(log.origin + "/")
    page.get_by_role("navigation").get_by_role("link", name="Mon dossier").click()
    expect(page).to_have_url(log.origin + "/status")
    expect(page.locator("[data-quick-exit][data-ready]")).to_be_attached()

    page.get_by_role("link", name="Partir vite").click()

    assert_left_without_a_trace(page, log)

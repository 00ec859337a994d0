"""The register page in a real Chromium: the secret is not lost, errors follow the corrections,
"under 18: yes" shows where to find help.

The receipt and its secret, shown only once, replace the form at the same address: leaving or
reloading the page asks first until the person says they saved the secret, and the language
switch re-renders the receipt in place. The error summary and the inline errors follow the
person's corrections, with aria-invalid on the fields still to fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import SiteOpener
from tests.images import write_photo

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photo(tmp_path_factory.mktemp("photos") / "beach.jpg", seed=611)


def fill_and_register(page: Page, photo: Path) -> str:
    """Register one photo from the register page; return the secret shown."""
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    page.locator("#photos").set_input_files([str(photo)])
    expect(page.locator(".photo.ready")).to_have_count(1, timeout=20_000)
    page.locator("#scope-intimate").check()
    page.locator("#depicted").check()
    page.locator("#rights").check()
    page.locator("#minor-no").check()
    page.locator("[data-submit]").click()
    expect(page.locator("[data-case-secret]")).to_be_visible()
    secret = page.locator("[data-case-secret]").get_attribute("data-case-secret")
    assert secret
    return secret


def test_the_receipt_survives_the_language_switch_and_leaving_asks_first(
    site: SiteOpener, photo: Path
) -> None:
    page, log = site(locale="en-GB")
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.type)
        dialog.dismiss()  # Stay on the page.

    page.on("dialog", record)
    page.goto(log.origin + "/register")
    secret = fill_and_register(page, photo)
    reference = page.locator("[data-case-reference]").get_attribute("data-case-reference")

    # Closing (as a reload or a click away would) asks first; staying keeps the receipt.
    page.close(run_before_unload=True)
    expect(page.locator("[data-case-secret]")).to_have_text(secret)
    assert dialogs == ["beforeunload"]
    assert not page.is_closed()

    # The language switch re-renders the receipt in French, the same secret in it.
    page.locator(".language-switcher").get_by_role("button", name="Français").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Vos photos sont enregistrées")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("navigation").get_by_role("link", name="Mon dossier")).to_be_visible()
    expect(page.locator("[data-case-secret]")).to_have_text(secret)
    expect(page.locator("[data-case-reference]")).to_have_attribute(
        "data-case-reference", reference or ""
    )
    assert page.url == log.origin + "/register"
    assert dialogs == ["beforeunload"], "the switch left the page"

    # Back to English, then the person says they saved it: leaving no longer asks.
    page.locator(".language-switcher").get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your photos are registered")
    page.get_by_label("I have saved my secret").check()
    with page.expect_event("close"):
        page.close(run_before_unload=True)
    assert dialogs == ["beforeunload"]

    # The secret went nowhere but into the page: no URL, no storage, no cookie.
    assert all(secret not in request.url for request in log.requests)
    assert log.page_errors == []
    assert log.console_errors == []


def test_the_secret_is_kept_in_no_storage_and_no_cookie(site: SiteOpener, photo: Path) -> None:
    page, log = site(locale="fr-FR")
    page.goto(log.origin + "/register")
    secret = fill_and_register(page, photo)
    page.locator(".language-switcher").get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your photos are registered")

    stored = page.evaluate(
        """() => JSON.stringify([document.cookie, Object.entries(localStorage),
                                 Object.entries(sessionStorage), location.href])"""
    )
    assert secret not in stored
    cookies = page.context.cookies()
    assert all(secret not in cookie["value"] for cookie in cookies)
    assert any(c["name"] == "django_language" and c["value"] == "en" for c in cookies)


def test_the_error_summary_and_inline_errors_follow_the_corrections(
    site: SiteOpener, photo: Path
) -> None:
    page, log = site(locale="en-GB")
    page.goto(log.origin + "/register")
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    summary = page.locator("[data-error-summary]")

    page.locator("[data-submit]").click()
    expect(summary).to_be_visible()
    expect(summary.locator("h2")).to_have_text("5 points need your attention")
    expect(summary.locator("li")).to_have_count(5)
    expect(page.locator("#scope-error")).to_have_text("Choose the protection you want.")
    expect(page.locator("#scope-intimate")).to_have_attribute("aria-invalid", "true")
    described = page.locator("#scope-intimate").get_attribute("aria-describedby") or ""
    assert "scope-error" in described.split()
    expect(page.locator("#depicted")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#photos")).to_have_attribute("aria-invalid", "true")

    page.locator("#scope-intimate").check()
    page.locator("#depicted").check()
    page.locator("#rights").check()
    page.locator("#minor-yes").check()
    expect(summary.locator("li")).to_have_count(1)
    expect(summary.locator("h2")).to_have_text("One point needs your attention")
    expect(page.locator("#scope-error")).to_have_count(0)
    expect(page.locator("#scope-intimate")).not_to_have_attribute("aria-invalid", "true")
    assert "scope-error" not in (
        page.locator("#scope-intimate").get_attribute("aria-describedby") or ""
    )
    expect(page.locator("#depicted")).not_to_have_attribute("aria-invalid", "true")

    page.locator("#photos").set_input_files([str(photo)])
    expect(page.locator(".photo.ready")).to_have_count(1, timeout=20_000)
    expect(summary).to_be_hidden()
    expect(page.locator("[data-field-error]")).to_have_count(0)
    expect(page.locator("[aria-invalid]")).to_have_count(0)
    assert log.page_errors == []


def test_the_french_summary_counts_its_points(site: SiteOpener) -> None:
    page, log = site(locale="fr-FR")
    page.goto(log.origin + "/register")
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    page.locator("#depicted").check()
    page.locator("[data-submit]").click()
    expect(page.locator("[data-error-summary] h2")).to_have_text(
        "4 points demandent votre attention"
    )
    page.locator("#rights").check()
    page.locator("#scope-intimate").check()
    page.locator("#minor-no").check()
    expect(page.locator("[data-error-summary] h2")).to_have_text("Un point demande votre attention")


def test_under_18_yes_shows_the_help_for_minors_and_no_takes_it_away(site: SiteOpener) -> None:
    page, log = site(locale="fr-FR")
    page.goto(log.origin + "/register")
    panel = page.locator("[data-register-form] [data-minor-help]")
    expect(panel).to_be_hidden()

    page.locator("#minor-yes").check()
    expect(panel).to_be_visible()
    expect(panel.get_by_role("heading", level=3)).to_have_text(
        "Si la personne avait moins de 18\u00a0ans"
    )
    expect(panel.get_by_role("link", name="Appeler le 119")).to_have_attribute("href", "tel:119")
    expect(panel.get_by_role("link", name="pointdecontact.net")).to_be_visible()
    expect(panel.get_by_role("link", name="takeitdown.ncmec.org")).to_be_visible()

    page.locator("#minor-no").check()
    expect(panel).to_be_hidden()

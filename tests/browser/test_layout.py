"""The people's pages at the edges of their layout, in a real Chromium, in both languages.

Nothing is wider than a 320 px phone (a long address in a help card breaks anywhere), and the
header holds on one line on a 1280 px screen, in French too.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import SiteOpener

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("path", ["/", "/register", "/privacy", "/transparency"])
@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
def test_nothing_overflows_a_320_pixel_screen(site: SiteOpener, path: str, locale: str) -> None:
    page, log = site(locale=locale, viewport={"width": 320, "height": 640})
    page.goto(log.origin + path)
    if path == "/register":
        page.locator("#minor-yes").check()

    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 320, f"{path} is {width} px wide"


@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
def test_the_header_holds_on_one_line_at_1280_pixels(site: SiteOpener, locale: str) -> None:
    page, log = site(locale=locale, viewport={"width": 1280, "height": 800})
    page.goto(log.origin + "/status")

    tops = page.evaluate(
        """() => Array.from(document.querySelector('.header-inner').children,
                            (child) => Math.round(child.getBoundingClientRect().top))"""
    )
    rows = page.evaluate(
        """() => Array.from(document.querySelectorAll('.site-nav li'),
                            (item) => Math.round(item.getBoundingClientRect().top))"""
    )
    assert max(tops) - min(tops) < 20, tops
    assert len(set(rows)) == 1, rows

"""The admin's home page holds together at desktop and phone widths, in a real Chromium."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tests.browser.conftest import SiteOpener
from tests.conftest import staff_login

# The lines a text node takes, as the browser laid it out.
_LINES = """element => {
    const range = document.createRange();
    range.selectNodeContents(element);
    return new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size;
}"""
_TABLE_WIDTHS = """() => [...document.querySelectorAll('#content-main .module table')]
    .map(table => Math.round(table.getBoundingClientRect().width))"""


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 800, 375])
def test_the_statistics_link_of_the_admin_home_sits_on_one_line(
    site: SiteOpener, superuser: User, width: int
) -> None:
    client = staff_login(Client(), superuser)
    page, log = site(viewport={"width": width, "height": 900})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": log.origin}]
    )
    page.goto(f"{log.origin}/{settings.ADMIN_PATH}")
    link = page.locator("#rempart-statistics-module th a", has_text="Statistics")
    link.wait_for()

    assert link.evaluate(_LINES) == 1, f"'Statistics' wraps at {width} px"
    box = link.bounding_box()
    one_line = link.evaluate(
        "element => { const probe = document.createElement('span'); probe.textContent = 'S';"
        " element.after(probe); const height = probe.getBoundingClientRect().height;"
        " probe.remove(); return height; }"
    )
    assert box is not None
    assert box["height"] == pytest.approx(one_line, abs=1)
    # The module lines up with the app list below it, within the page.
    statistics, *apps = page.evaluate(_TABLE_WIDTHS)
    assert apps
    assert all(statistics == app for app in apps), (statistics, apps)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert not log.console_errors, log.console_errors

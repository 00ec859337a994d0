"""Fixtures for tests that drive a real, headless Chromium.

The registry's static files are served from a throwaway HTTP server on loopback, so pages load
the JavaScript modules exactly as a browser would, without Django. Every request that is not for
that server is aborted: the tests talk to nothing beyond 127.0.0.1.

``site`` opens the people's pages served by Django itself (pytest-django's live_server), in
browser contexts that log every request, console error and script error, for the journey tests.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Route,
    sync_playwright,
)

STATIC_ROOT = Path(__file__).resolve().parents[2] / "registry" / "static"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

SiteOpener = Callable[..., tuple[Page, "BrowsingLog"]]

BLANK_PAGE = b"<!doctype html><html><head><meta charset=utf-8><title>test</title></head></html>"


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    """Serves STATIC_ROOT, plus an empty page at / to give scripts an origin."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
    }

    def do_GET(self) -> None:
        if self.path == "/":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(BLANK_PAGE)))
            self.end_headers()
            self.wfile.write(BLANK_PAGE)
            return
        super().do_GET()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture(scope="session")
def static_server() -> Iterator[str]:
    """Base URL (http://127.0.0.1:<port>) of a server for registry/static/."""
    handler = functools.partial(_StaticHandler, directory=str(STATIC_ROOT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="static-server", daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """The system Chromium, headless (Playwright cannot download its own browser here)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        # make test installs it (make system-deps): a missing browser is a failure, not a skip.
        pytest.fail("Chromium is not installed: no `chromium` on PATH (run make system-deps)")
    browser = playwright_instance.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


def open_page(browser: Browser, base_url: str) -> Page:
    """A blank page on the static server's origin, unable to reach any other origin."""
    context = browser.new_context()

    def only_loopback(route: Route) -> None:
        if route.request.url == base_url or route.request.url.startswith(base_url + "/"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.goto(base_url + "/")
    return page


@pytest.fixture(scope="module")
def pdq_page(browser: Browser, static_server: str) -> Iterator[Page]:
    """A page where `globalThis.pdq` is the imported registry/static/registry/pdq.js module."""
    page = open_page(browser, static_server)
    page.evaluate("async () => { globalThis.pdq = await import('/registry/pdq.js'); }")
    try:
        yield page
    finally:
        page.context.close()


# --- The people's pages, served by Django (pytest-django's live_server) ----------------------


@dataclass
class BrowsingLog:
    """Everything one browser context asked for or complained about, for privacy assertions."""

    origin: str
    requests: list[Request] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        """URLs requested from any origin but the site's (blob: and data: of the page count as
        the site's own: they never leave the browser)."""
        foreign = []
        for request in self.requests:
            url = request.url
            if url.startswith("data:"):
                continue
            inner = url[len("blob:") :] if url.startswith("blob:") else url
            if inner != self.origin and not inner.startswith(self.origin + "/"):
                foreign.append(url)
        return foreign

    def largest_body(self) -> tuple[int, str]:
        """The size in bytes of the largest request body sent, and the URL it went to."""
        sizes = [(len(request.post_data_buffer or b""), request.url) for request in self.requests]
        return max(sizes, default=(0, ""))


@pytest.fixture(scope="session")
def django_beside_playwright() -> Iterator[None]:
    """Let Django use the database while Playwright's sync API holds an event loop.

    Playwright's sync API runs an asyncio loop in the test's thread, and Django refuses database
    work from a thread with a running loop. The test code is synchronous all the same.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def site(
    django_beside_playwright: None,
    browser: Browser,
    live_server: Any,
    transactional_db: None,
) -> Iterator[SiteOpener]:
    """Open the live site in fresh browser contexts: ``site(locale="fr-FR")`` -> (page, log).

    Each context may reach only the live server: every other request is logged, then aborted.
    Console errors (a Content-Security-Policy violation among them) and script errors are logged.
    """
    origin = str(live_server.url)
    contexts: list[BrowserContext] = []

    def open_site(locale: str = "en-GB", **options: Any) -> tuple[Page, BrowsingLog]:
        context = browser.new_context(locale=locale, **options)
        contexts.append(context)
        log = BrowsingLog(origin=origin)
        context.on("request", lambda request: log.requests.append(request))

        def only_the_site(route: Route) -> None:
            url = route.request.url
            if url == origin or url.startswith(origin + "/"):
                route.continue_()
            else:
                route.abort()

        context.route("**/*", only_the_site)
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                log.console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: log.page_errors.append(str(error)))
        return page, log

    try:
        yield open_site
    finally:
        for context in contexts:
            context.close()

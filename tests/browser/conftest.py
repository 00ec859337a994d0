"""Fixtures for tests that drive a real, headless Chromium.

The registry's static files are served from a throwaway HTTP server on loopback, so pages load
the JavaScript modules exactly as a browser would, without Django. Every request that is not for
that server is aborted: the tests talk to nothing beyond 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

STATIC_ROOT = Path(__file__).resolve().parents[2] / "registry" / "static"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

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
        pytest.skip("Chromium is not installed: no `chromium` on PATH (CI installs it)")
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

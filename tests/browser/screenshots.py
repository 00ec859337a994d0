"""Screenshots of every people's page, at phone and desktop widths, into docs/screenshots/.

Run with ``make screenshots`` (or ``python -m tests.browser.screenshots``). It starts the
registry on a throwaway SQLite database in a temporary directory (DEBUG on, so Django serves the
static files; nothing else is touched), then drives the system Chromium through a registration,
a receipt check, the status page and a withdrawal, saving a full-page PNG of each step:

    docs/screenshots/<page>-<width>.png    width: phone (390 px) or desktop (1280 px)

Every request to any origin but the local server is aborted, as in the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS
from tests.images import write_photo

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "docs" / "screenshots"


@dataclass(frozen=True)
class Width:
    name: str
    pixels: int
    height: int


WIDTHS = (Width("phone", 390, 844), Width("desktop", 1280, 900))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def registry_server(data_dir: Path) -> Iterator[str]:
    """Migrate a fresh SQLite database in ``data_dir`` and serve the registry; yield its URL."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY"}
    }
    environment.update(
        DEBUG="1",
        DATA_DIR=str(data_dir),
        INDEX_AUTOSTART="0",
        SECURE_SSL_REDIRECT="0",
        # The address receipts name, as a deployment would set it.
        SITE_ROOT="https://rempart.example.org",
        PYTHONUNBUFFERED="1",
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(
        [*manage, "migrate", "--no-input", "-v", "0"], env=environment, cwd=ROOT, check=True
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310 - loopback
                    break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the registry server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _save(page: Page, name: str, width: Width) -> None:
    """A full-page PNG, reduced to a palette: screenshots of text compress far better."""
    path = OUTPUT / f"{name}-{width.name}.png"
    page.wait_for_load_state("load")
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    reduced.save(path, optimize=True)
    print(f"  {path.relative_to(ROOT)}")


def _open(browser: Browser, url: str, width: Width, locale: str) -> Page:
    context = browser.new_context(
        viewport={"width": width.pixels, "height": width.height},
        device_scale_factor=1,
        locale=locale,
        is_mobile=width.name == "phone",
        has_touch=width.name == "phone",
    )

    def only_the_registry(route: Route) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_the_registry)
    return context.new_page()


def journey(browser: Browser, url: str, width: Width, photos: list[Path]) -> None:
    """Walk through every page in English, saving each one."""
    page = _open(browser, url, width, "en-GB")
    page.goto(url + "/")
    _save(page, "home", width)

    page.goto(url + "/register")
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    _save(page, "register", width)
    page.locator("#photos").set_input_files([str(path) for path in photos])
    expect(page.locator(".photo.ready")).to_have_count(2, timeout=30_000)
    expect(page.locator(".photo.refused")).to_have_count(1)
    page.get_by_label("Intimate image: never publish it").check()
    page.locator("#depicted").check()
    page.locator("#rights").check()
    page.locator("#minor-no").check()
    page.locator("#minor-no").blur()
    _save(page, "register-filled", width)

    page.get_by_role("button", name="Register my photos").click()
    expect(page.locator("[data-case-secret]")).to_be_visible()
    page.locator("[data-receipt-heading]").blur()
    _save(page, "receipt", width)
    reference = page.locator("[data-case-reference]").get_attribute("data-case-reference") or ""
    secret = page.locator("[data-case-secret]").get_attribute("data-case-secret") or ""
    receipt = page.locator("[data-receipt-text]").inner_text()
    if width.name == "desktop":
        page.emulate_media(media="print")
        _save(page, "receipt-print", width)
        page.emulate_media(media="screen")

    page.goto(url + "/receipt/verify")
    _save(page, "verify", width)
    page.locator("#receipt-input").fill(receipt)
    page.get_by_role("button", name="Check the receipt").click()
    page.locator("[data-verdict]").blur()
    _save(page, "verify-valid", width)
    page.locator("#receipt-input").fill(receipt.replace("Photos: 2", "Photos: 3"))
    page.get_by_role("button", name="Check the receipt").click()
    page.locator("[data-verdict]").blur()
    _save(page, "verify-tampered", width)

    page.goto(url + "/status")
    _save(page, "status-form", width)
    page.locator("#case-reference-input").fill(reference)
    page.locator("#case-secret-input").fill(secret)
    page.get_by_role("button", name="Show my case").click()
    expect(page.locator("[data-case-status]")).to_have_attribute("data-case-status", "active")
    _save(page, "status", width)
    page.get_by_role("button", name="Withdraw my case").click()
    _save(page, "withdraw-confirm", width)
    page.get_by_role("button", name="Yes, withdraw and stop matching").click()
    expect(page.locator("[data-case-status]")).to_have_attribute("data-case-status", "withdrawn")
    _save(page, "withdrawn", width)
    page.context.close()

    french = _open(browser, url, width, "fr-FR")
    french.goto(url + "/")
    _save(french, "home-fr", width)
    french.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("Chromium is not installed: no `chromium` on PATH.")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rempart-screenshots-") as scratch:
        folder = Path(scratch)
        flat = folder / "blank.png"
        Image.new("RGB", (320, 240), (200, 200, 200)).save(flat)
        photos = [
            write_photo(folder / "holiday.jpg", seed=501),
            write_photo(folder / "portrait.png", seed=502, size=(400, 300)),
            flat,
        ]
        with registry_server(folder / "data") as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                for width in WIDTHS:
                    print(f"{width.name} ({width.pixels} px):")
                    journey(browser, url, width, photos)
            finally:
                browser.close()


if __name__ == "__main__":
    main()

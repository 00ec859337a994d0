"""Screenshots of every people's page, at phone and desktop widths, into docs/screenshots/.

Run with ``make screenshots`` (or ``python -m tests.browser.screenshots``). It starts the
registry on a throwaway SQLite database in a temporary directory (DEBUG on, so Django serves the
static files; nothing else is touched), then drives the system Chromium through a registration,
a receipt check, the status page and a withdrawal, saving a full-page PNG of each step:

    docs/screenshots/<page>-<width>.png    width: phone (390 px) or desktop (1280 px)

The public transparency page is taken at both widths, and the admin at desktop width: the
second-factor enrolment, the statistics dashboard and the review queue, on a month of made-up
activity (cases, partners' checks and feedback, disputed images) seeded before the server starts.

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

from django_otp.oath import totp
from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS
from tests.browser.videos import SCENES, make_video
from tests.images import write_photo

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "docs" / "screenshots"


@dataclass(frozen=True)
class Width:
    name: str
    pixels: int
    height: int


WIDTHS = (Width("phone", 390, 844), Width("desktop", 1280, 900))

ADMIN_PASSWORD = "a long screenshot password"  # a throwaway database
# The superuser's TOTP key (hex), so that this script can compute its codes.
ADMIN_TOTP_KEY = "3132333435363738393031323334353637383930"

# Run in the throwaway database before the server starts: staff, partners, a month of activity.
SEED = f"""
import datetime as dt
import random

from django.contrib.auth.models import Group, User
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.models import MatchCall, Partner
from registry.services import partner_key_issue
from registry.models import Case, Feedback, RegisteredImage
from registry.roles import REVIEWERS
from registry.services import case_withdraw
from tests.factories import register_case

rng = random.Random(2026)
admin = User.objects.create_superuser("admin", password="{ADMIN_PASSWORD}")
TOTPDevice.objects.create(user=admin, name="phone", key="{ADMIN_TOTP_KEY}", confirmed=True)
reviewer = User.objects.create_user("reviewer", password="{ADMIN_PASSWORD}", is_staff=True)
reviewer.groups.add(Group.objects.get(name=REVIEWERS))
keys = []
for name in ["Photo Sharing Co", "Friendly AI Editor", "Regional Forum"]:
    partner = Partner.objects.create(name=name)
    keys.append(partner_key_issue(partner=partner, scopes=["match", "sync", "feedback"]).key)
now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
images = []
for offset in range(29, -1, -1):
    day = now - dt.timedelta(days=offset)
    for _ in range(rng.randint(1, 5)):
        case = register_case(images=rng.randint(1, 3)).case
        Case.objects.filter(pk=case.pk).update(created_at=day)
        RegisteredImage.objects.filter(case=case).update(created_at=day)
        images.extend(RegisteredImage.objects.filter(case=case))
        if rng.random() < 0.15:
            case_withdraw(case=case)
            Case.objects.filter(pk=case.pk).update(withdrawn_at=day + dt.timedelta(hours=2))
    for key, scale in zip(keys, [40, 15, 6]):
        for purpose in ["publish", "ai_edit"]:
            for _ in range(rng.randint(scale // 2, scale)):
                hashes = rng.randint(1, 20)
                matched = rng.choice([0] * 12 + [1, 1, 2])
                MatchCall.objects.create(
                    partner=key.partner, key=key, purpose=purpose, hashes=hashes,
                    matched_hashes=matched, matches=matched, created_at=day,
                )
    for _ in range(rng.randint(0, 4)):
        Feedback.objects.create(
            partner_id=rng.choice(keys).partner_id, image=rng.choice(images),
            verdict=rng.choice(["blocked", "blocked", "blocked", "not_blocked", "pending_review"]),
            created_at=day,
        )
active = [image for image in images if image.status == "active"]
fields = {{field.name for field in RegisteredImage._meta.get_fields()}}
for days_ago, image in zip([6, 3, 1, 0], rng.sample(active, 4)):
    dispute = {{"status": "disputed"}}
    if "disputed_at" in fields:
        dispute.update(
            disputed_at=now - dt.timedelta(days=days_ago), dispute_reason="partner_reports"
        )
    RegisteredImage.objects.filter(pk=image.pk).update(**dispute)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def registry_server(data_dir: Path, seed: str = "") -> Iterator[str]:
    """Migrate a fresh SQLite database in ``data_dir``, run ``seed`` (Python, in Django's shell)
    and serve the registry; yield its URL."""
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
    if seed:
        subprocess.run([*manage, "shell", "-c", seed], env=environment, cwd=ROOT, check=True)
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
    expect(page.locator(".photo.ready")).to_have_count(3, timeout=30_000)
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
    # Until the secret is saved, leaving the receipt asks first.
    page.locator("[data-secret-saved]").check()

    page.goto(url + "/receipt/verify")
    _save(page, "verify", width)
    page.locator("#receipt-input").fill(receipt)
    page.get_by_role("button", name="Check the receipt").click()
    page.locator("[data-verdict]").blur()
    _save(page, "verify-valid", width)
    # Two photos and a video, then one item more: the signature no longer holds.
    assert "Photos: 3" in receipt, receipt
    page.locator("#receipt-input").fill(receipt.replace("Photos: 3", "Photos: 4"))
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

    page = _open(browser, url, width, "en-GB")
    page.goto(url + "/transparency")
    _save(page, "transparency", width)
    page.context.close()

    french = _open(browser, url, width, "fr-FR")
    french.goto(url + "/")
    _save(french, "home-fr", width)
    french.goto(url + "/transparency")
    _save(french, "transparency-fr", width)
    french.context.close()


def _log_in(page: Page, url: str, username: str) -> None:
    page.goto(url + "/admin/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(ADMIN_PASSWORD)
    page.locator("input[type=submit]").click()
    expect(page.locator("#two-factor-form")).to_be_visible()


def admin_pages(browser: Browser, url: str, width: Width) -> None:
    """The second-factor enrolment of a new reviewer, then the superuser's dashboard and the
    review queue."""
    page = _open(browser, url, width, "en-GB")
    _log_in(page, url, "reviewer")
    expect(page.locator("img[alt^='QR code']")).to_be_visible()
    _save(page, "admin-two-factor-enrol", width)
    page.context.close()

    page = _open(browser, url, width, "en-GB")
    _log_in(page, url, "admin")
    code = totp(bytes.fromhex(ADMIN_TOTP_KEY))
    page.locator("#id_token").fill(f"{code:06d}")
    page.locator("#two-factor-form input[type=submit]").click()
    expect(page.locator("#rempart-statistics-module")).to_be_visible()
    page.goto(url + "/admin/statistics/?days=30")
    _save(page, "admin-statistics", width)
    queue = page.goto(url + "/admin/registry/reviewqueueimage/")
    if queue is None or queue.status == 404:  # no queue of its own: the images, filtered
        page.goto(url + "/admin/registry/registeredimage/?status__exact=disputed")
    _save(page, "admin-review-queue", width)
    page.context.close()


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
            make_video(folder, SCENES),
            flat,
        ]
        with registry_server(folder / "data", SEED) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                for width in WIDTHS:
                    print(f"{width.name} ({width.pixels} px):")
                    journey(browser, url, width, photos)
                print("admin (desktop):")
                admin_pages(browser, url, WIDTHS[-1])
            finally:
                browser.close()


if __name__ == "__main__":
    main()

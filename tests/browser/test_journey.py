"""A person's whole journey in a real Chromium, in English and in French.

Register two photos (and see a third, too plain to protect, refused), read the receipt and check
it on the verify page, find the case on the status page, withdraw it. Throughout, the browser
must ask nothing of any origin but the registry's and send no request body larger than a few
kilobytes: the photos never leave the device, only their hashes do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, Route, expect

from registry.models import Case, RegisteredImage
from tests.browser.conftest import BrowsingLog, SiteOpener
from tests.factories import register_case
from tests.images import write_photo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Two photos' hashes (8 dihedral and up to 78 derived views each) with the consent fields come
# to about 13 kB; one 480x640 photo is ~100 kB.
MAX_BODY_BYTES = 16384


@dataclass(frozen=True)
class Words:
    """What a person reads, and clicks, in one language."""

    locale: str
    home_heading: str
    protect: str
    intimate: str
    depicted: str
    rights: str
    minor_no: str
    register: str
    registered: str
    too_plain: str
    saved: str
    check_link: str
    check_receipt: str
    genuine: str
    my_case: str
    show_case: str
    withdraw: str
    confirm_withdraw: str
    stopped: str


ENGLISH = Words(
    locale="en-GB",
    home_heading="Stop your photos from being published or sexualised",
    protect="Protect my photos",
    intimate="Intimate image: never publish it",
    depicted="I am the person in these photos",
    rights="These photos are mine to register",
    minor_no="No",
    register="Register my photos",
    registered="Your photos are registered",
    too_plain="too plain or too small",
    saved="I have saved my secret",
    check_link="Check a receipt",
    check_receipt="Check the receipt",
    genuine="This receipt is genuine",
    my_case="My case",
    show_case="Show my case",
    withdraw="Withdraw my case",
    confirm_withdraw="Yes, withdraw and stop matching",
    stopped="Matching has stopped",
)

FRENCH = Words(
    locale="fr-FR",
    home_heading="Empêchez la publication ou la sexualisation de vos photos",
    protect="Protéger mes photos",
    intimate="Image intime : ne jamais la publier",
    depicted="Je suis la personne sur ces photos",
    rights="J\u2019ai le droit d\u2019enregistrer ces photos",
    minor_no="Non",
    register="Enregistrer mes photos",
    registered="Vos photos sont enregistrées",
    too_plain="trop unie ou trop petite",
    saved="J\u2019ai mis mon code secret en lieu sûr",
    check_link="Vérifier un reçu",
    check_receipt="Vérifier le reçu",
    genuine="Ce reçu est authentique",
    my_case="Mon dossier",
    show_case="Afficher mon dossier",
    withdraw="Retirer mon dossier",
    confirm_withdraw="Oui, retirer et arrêter la recherche",
    stopped="La recherche de vos photos est arrêtée",
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two photo-like images that can be protected, and a flat one that cannot."""
    folder = tmp_path_factory.mktemp("photos")
    flat = folder / "flat.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(flat)
    return [
        write_photo(folder / "beach.jpg", seed=501),
        write_photo(folder / "party.png", seed=502, size=(400, 300)),
        flat,
    ]


def register_photos(page: Page, words: Words, photos: list[Path]) -> tuple[str, str, str]:
    """Go from the home page to a registration; return the reference, secret and receipt."""
    expect(page.get_by_role("heading", level=1)).to_contain_text(words.home_heading)
    page.get_by_role("link", name=words.protect).first.click()
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    page.locator("#photos").set_input_files([str(path) for path in photos])
    expect(page.locator(".photo.ready")).to_have_count(2, timeout=20_000)
    expect(page.locator(".photo.refused")).to_have_count(1)
    expect(page.locator(".photo.refused")).to_contain_text(words.too_plain)
    # Previews are local blob: URLs, never uploads.
    for source in page.locator(".photo-thumb").evaluate_all("els => els.map(e => e.src)"):
        assert source.startswith("blob:")
    page.get_by_label(words.intimate).check()
    page.get_by_label(words.depicted).check()
    page.get_by_label(words.rights).check()
    page.locator("#minor").get_by_label(words.minor_no, exact=True).check()
    expect(page.locator("[data-summary-photos]")).to_have_text("2")
    page.get_by_role("button", name=words.register).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(words.registered)
    reference = page.locator("[data-case-reference]").get_attribute("data-case-reference")
    secret = page.locator("[data-case-secret]").get_attribute("data-case-secret")
    receipt = page.locator("[data-receipt-text]").inner_text()
    assert reference is not None
    assert secret is not None
    assert f"Reference: {reference}" in receipt
    assert "Photos: 2" in receipt
    assert secret not in receipt
    check_printed_receipt(page, secret)
    page.get_by_label(words.saved).check()
    return reference, secret, receipt


def check_printed_receipt(page: Page, secret: str) -> None:
    """The printed receipt leaves the secret out, unless the person asks for it."""
    page.emulate_media(media="print")
    expect(page.locator("[data-receipt-text]")).to_be_visible()
    expect(page.locator("[data-case-secret]")).to_be_hidden()
    expect(page.locator(".print-secret")).to_be_hidden()
    page.emulate_media(media="screen")
    page.locator("[data-print-secret]").check()
    page.emulate_media(media="print")
    expect(page.locator(".print-secret")).to_be_visible()
    expect(page.locator(".print-secret")).to_contain_text(secret)
    page.emulate_media(media="screen")


def verify_receipt(page: Page, words: Words, receipt: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name=words.check_link).click()
    page.locator("#receipt-input").fill(receipt)
    page.get_by_role("button", name=words.check_receipt).click()
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "valid")
    expect(page.locator("[data-verdict] h2")).to_have_text(words.genuine)


def find_and_withdraw(page: Page, words: Words, reference: str, secret: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name=words.my_case).click()
    page.locator("#case-reference-input").fill(reference)
    page.locator("#case-secret-input").fill(secret)
    page.get_by_role("button", name=words.show_case).click()
    expect(page.locator("[data-case-status]")).to_have_attribute("data-case-status", "active")
    expect(page.locator("[data-case-photos]")).to_have_attribute("data-case-photos", "2")
    page.get_by_role("button", name=words.withdraw).click()
    page.get_by_role("button", name=words.confirm_withdraw).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(words.stopped)
    expect(page.locator("[data-case-status]")).to_have_attribute("data-case-status", "withdrawn")


def assert_private(log: BrowsingLog, secret: str) -> None:
    sent = [request for request in log.requests if request.post_data_buffer]
    assert any(request.url.endswith("/photos") or "/register/" in request.url for request in sent)
    assert log.foreign_requests() == []
    size, url = log.largest_body()
    assert size <= MAX_BODY_BYTES, f"{size} bytes sent to {url}"
    for request in sent:
        body = request.post_data_buffer or b""
        assert b"\xff\xd8\xff" not in body  # JPEG
        assert b"\x89PNG" not in body
    assert all(secret not in request.url for request in log.requests)
    assert log.page_errors == []
    assert log.console_errors == []


@pytest.mark.parametrize("words", [ENGLISH, FRENCH], ids=["english", "french"])
def test_a_person_registers_checks_and_withdraws_without_sending_a_photo(
    site: SiteOpener, photos: list[Path], words: Words
) -> None:
    page, log = site(locale=words.locale)
    page.goto(log.origin + "/")

    reference, secret, receipt = register_photos(page, words, photos)
    verify_receipt(page, words, receipt)
    find_and_withdraw(page, words, reference, secret)

    case = Case.objects.get(reference=reference)
    assert case.status == Case.Status.WITHDRAWN
    assert case.consent.language == words.locale[:2]
    assert case.images.filter(status=RegisteredImage.Status.WITHDRAWN).count() == 2
    assert_private(log, secret)


def tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Press Tab until ``selector`` has the focus, checking every stop shows a visible focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focus = page.evaluate(
            """(selector) => {
                const active = document.activeElement;
                // A hidden file input shows its focus on its label, the visible button.
                const shown = active.matches("input[type=file]")
                    ? document.querySelector(`label[for="${active.id}"]`) : active;
                const style = getComputedStyle(shown);
                return {
                    reached: active.matches(selector),
                    visible: style.outlineStyle !== "none" && style.outlineWidth !== "0px",
                    name: active.outerHTML.slice(0, 80),
                };
            }""",
            selector,
        )
        assert focus["visible"], f"no visible focus on {focus['name']}"
        if focus["reached"]:
            return
    raise AssertionError(f"{selector} is not reachable with the Tab key")


def test_a_person_adds_photos_with_the_keyboard_alone(site: SiteOpener, photos: list[Path]) -> None:
    registered = register_case(images=1)
    page, log = site(locale="en-GB")
    page.goto(log.origin + "/status")

    tab_to(page, "#case-reference-input")
    page.keyboard.type(registered.case.reference)
    tab_to(page, "#case-secret-input")
    page.keyboard.type(registered.secret)
    page.keyboard.press("Enter")
    expect(page.locator("[data-case-status]")).to_have_attribute("data-case-status", "active")
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()

    # Intercept file choosers from now on, well before the key press that opens one.
    page.on("filechooser", lambda _chooser: None)
    tab_to(page, "#more-photos")
    with page.expect_file_chooser(timeout=5_000) as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files([str(photos[0]), str(photos[1])])
    expect(page.locator(".photo.ready")).to_have_count(2, timeout=20_000)
    tab_to(page, "[data-submit]")
    page.keyboard.press("Enter")

    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Your photos were added to your case")
    expect(heading).to_be_focused()
    assert registered.case.images.count() == 3
    assert page.locator("[data-case-secret]").count() == 0
    assert_private(log, registered.secret)


def test_a_registration_retried_after_a_lost_answer_opens_one_case(
    site: SiteOpener, photos: list[Path]
) -> None:
    page, log = site(locale="en-GB")
    keys: list[str] = []

    def lose_the_first_answer(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            route.fetch()  # The registry receives it and opens the case...
            route.abort("connectionreset")  # ...but its answer never reaches the browser.
        else:
            route.continue_()

    page.route("**/register/submit", lose_the_first_answer)
    page.goto(log.origin + "/register")
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    page.locator("#photos").set_input_files([str(photos[0]), str(photos[1])])
    expect(page.locator(".photo.ready")).to_have_count(2, timeout=20_000)
    page.get_by_label(ENGLISH.intimate).check()
    page.get_by_label(ENGLISH.depicted).check()
    page.get_by_label(ENGLISH.rights).check()
    page.locator("#minor").get_by_label(ENGLISH.minor_no, exact=True).check()
    submit = page.get_by_role("button", name=ENGLISH.register)
    submit.click()
    expect(page.locator("[data-error-summary]")).to_be_visible()
    assert Case.objects.count() == 1

    submit.click()

    expect(page.get_by_role("heading", level=1)).to_have_text(ENGLISH.registered)
    reference = page.locator("[data-case-reference]").get_attribute("data-case-reference")
    assert Case.objects.get().reference == reference
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert len(keys[0]) == 36  # A random UUID.

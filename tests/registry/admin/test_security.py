"""The admin's own security: a second factor on every page, lockout, and the two staff roles."""

from __future__ import annotations

import re

import pytest
from axes.models import (
    AccessAttempt,
    AccessFailureLog,
    AccessLog,
)
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import get_resolver, reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.models import AuditEvent, Partner, PartnerKey
from registry.roles import REVIEWERS
from tests.conftest import PartnerPersona, staff_login

ADDRESS = "198.51.100.23"
LOGIN = reverse("admin:login")
TWO_FACTOR = reverse("admin:two-factor")
# Pages that must open without a second factor: the steps of logging in and out.
OPEN_PAGES = {"login", "logout", "two-factor"}


def _admin_urls(partner: PartnerPersona) -> list[str]:
    """Every URL the admin site registers, each route's parameters filled in."""
    _, resolver = get_resolver().namespace_dict["admin"]
    values = {
        "app_label": "registry",
        "url": "nowhere/",
        "partner_id": str(partner.partner.pk),
        "key_id": str(partner.key.pk),
        "object_id": str(partner.partner.pk),
        "content_type_id": "1",
        "pk": "1",
    }
    urls: set[str] = set()
    for name in resolver.reverse_dict:
        if not isinstance(name, str) or name in OPEN_PAGES:
            continue
        for possibilities, *_ in resolver.reverse_dict.getlist(name):
            for _format, params in possibilities:
                urls.add(reverse(f"admin:{name}", kwargs={p: values.get(p, "1") for p in params}))
    return sorted(urls)


def _token(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def _password_login(client: Client, username: str, password: str) -> int:
    response = client.post(LOGIN, {"username": username, "password": password, "next": "/"})
    return response.status_code


@pytest.mark.django_db
def test_the_admin_registers_the_pages_this_test_walks(partner_a: PartnerPersona) -> None:
    urls = _admin_urls(partner_a)
    for expected in [
        "/admin/",
        "/admin/statistics/",
        "/admin/statistics.csv",
        "/admin/registry/partner/",
        "/admin/registry/partner/add/",
        f"/admin/registry/partner/{partner_a.partner.pk}/change/",
        f"/admin/registry/partner/{partner_a.partner.pk}/keys/issue/",
        "/admin/registry/registeredimage/",
        "/admin/auth/user/",
        "/admin/otp_totp/totpdevice/",
        "/admin/axes/accessattempt/",
    ]:
        assert expected in urls
    assert len(urls) > 60


@pytest.mark.django_db
def test_a_staff_member_without_a_second_factor_reaches_no_admin_page(
    superuser: User, partner_a: PartnerPersona
) -> None:
    client = Client()
    client.force_login(superuser)  # the password step only
    for url in _admin_urls(partner_a):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(LOGIN + "?next="), url
    # A POST is refused the same way, and changes nothing.
    response = client.post(
        f"/admin/registry/partner/{partner_a.partner.pk}/keys/{partner_a.key.pk}/revoke/"
    )
    assert response.status_code == 302
    assert PartnerKey.objects.get(pk=partner_a.key.pk).revoked_at is None
    # The login page sends them on to the second factor, never into the admin.
    login = client.get(LOGIN + "?next=/admin/registry/partner/")
    assert login.status_code == 302
    assert login["Location"] == TWO_FACTOR + "?next=%2Fadmin%2Fregistry%2Fpartner%2F"


@pytest.mark.django_db
def test_a_verified_superuser_reaches_every_admin_page(
    superuser: User, partner_a: PartnerPersona
) -> None:
    client = staff_login(Client(), superuser)
    for url in _admin_urls(partner_a):
        response = client.get(url)
        assert response.status_code < 500, url
        assert not (response.status_code == 302 and response["Location"].startswith(LOGIN)), url
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/statistics/").status_code == 200


@pytest.mark.django_db
def test_enrolment_then_code_opens_the_admin(reviewer: User) -> None:
    client = Client()
    assert _password_login(client, "reviewer", "a long reviewer password") == 302
    index = client.get("/admin/")
    assert index.status_code == 302
    assert index["Location"].startswith(LOGIN)
    to_two_factor = client.get(index["Location"])
    assert to_two_factor["Location"].startswith(TWO_FACTOR)

    page = client.get(to_two_factor["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'src="data:image/svg+xml;base64,' in html  # the QR code, allowed by the CSP
    assert "no-store" in page["Cache-Control"]
    device = TOTPDevice.objects.get(user=reviewer)
    assert not device.confirmed
    assert client.get("/admin/registry/registeredimage/").status_code == 302

    wrong = f"{(int(_token(device)) + 1) % 1_000_000:06d}"
    refused = client.post(TWO_FACTOR, {"token": wrong, "next": "/admin/"})
    assert refused.status_code == 400
    assert client.get("/admin/").status_code == 302
    device.refresh_from_db()
    device.throttling_failure_count = 0  # the refusal slowed further tries; not what is tested
    device.throttling_failure_timestamp = None
    device.save()

    accepted = client.post(TWO_FACTOR, {"token": _token(device), "next": "/admin/"})
    assert accepted.status_code == 302
    assert accepted["Location"] == "/admin/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/registry/registeredimage/").status_code == 200
    event = AuditEvent.objects.get(action="staff.two_factor_enrolled")
    assert event.actor == f"staff:{reviewer.pk}"


@pytest.mark.django_db
def test_a_confirmed_device_asks_for_a_code_and_shows_no_key(reviewer: User) -> None:
    device = TOTPDevice.objects.create(user=reviewer, name="phone", confirmed=True)
    client = Client()
    assert _password_login(client, "reviewer", "a long reviewer password") == 302
    page = client.get(TWO_FACTOR).content.decode()
    assert "data:image/svg+xml" not in page
    assert "data-totp-key" not in page
    response = client.post(TWO_FACTOR, {"token": _token(device), "next": "http://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"  # never sent to another site
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_repeated_failed_logins_lock_the_username_out_and_keep_no_address(
    superuser: User, reviewer: User
) -> None:
    client = Client(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT="test browser")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _password_login(client, "admin", "wrong password") == 200  # the form again
    assert _password_login(client, "admin", "wrong password") == 429  # the last one allowed
    locked = client.post(LOGIN, {"username": "admin", "password": "a long admin password"})
    assert locked.status_code == 429
    assert "Account locked" in locked.content.decode()
    assert "_auth_user_id" not in client.session

    # By username: another account still logs in from the same address.
    other = Client(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT="test browser")
    assert _password_login(other, "reviewer", "a long reviewer password") == 302

    attempts = list(AccessAttempt.objects.values())
    assert attempts
    assert all(row["ip_address"] is None for row in attempts)
    assert sum(row["failures_since_start"] for row in attempts) >= settings.AXES_FAILURE_LIMIT
    for row in attempts:
        assert ADDRESS not in str(row)
        assert "wrong password" not in str(row)
    assert not AccessLog.objects.exists()
    assert not AccessFailureLog.objects.exists()


@pytest.mark.django_db
def test_the_reviewers_group_holds_exactly_its_permissions() -> None:
    group = Group.objects.get(name=REVIEWERS)
    granted = {
        f"{app}.{codename}"
        for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    }
    views = {
        f"{app}.{codename}"
        for app, codename in Permission.objects.filter(
            content_type__app_label__in=["registry", "api"], codename__startswith="view_"
        ).values_list("content_type__app_label", "codename")
    }
    assert granted == views | {"registry.change_registeredimage"}
    assert "registry.view_partner" in granted
    assert "registry.change_partner" not in granted


@pytest.mark.django_db
def test_a_reviewer_reads_partners_but_never_manages_them_or_their_keys(
    reviewer: User, superuser: User, partner_a: PartnerPersona
) -> None:
    partner = partner_a.partner
    Partner.objects.filter(pk=partner.pk).update(
        webhook_url="https://hooks.example.com/a", webhook_secret="whsec_c2VjcmV0LW9mLWE="
    )
    client = staff_login(Client(), reviewer)
    assert client.get("/admin/registry/registeredimage/").status_code == 200
    assert client.get("/admin/statistics/").status_code == 200
    assert client.get("/admin/registry/partner/").status_code == 200
    page = client.get(f"/admin/registry/partner/{partner.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "keys/issue" not in html
    assert "/rotate/" not in html
    assert "/revoke/" not in html
    assert 'name="_save"' not in html
    assert "c2VjcmV0LW9mLWE" not in html
    assert "set (never shown)" in html

    refused = [
        client.get("/admin/registry/partner/add/"),
        client.post(f"/admin/registry/partner/{partner.pk}/change/", {"name": "Renamed"}),
        client.get(f"/admin/registry/partner/{partner.pk}/keys/issue/"),
        client.post(f"/admin/registry/partner/{partner.pk}/keys/issue/", {"scopes": ["match"]}),
        client.post(f"/admin/registry/partner/{partner.pk}/keys/{partner_a.key.pk}/rotate/"),
        client.post(f"/admin/registry/partner/{partner.pk}/keys/{partner_a.key.pk}/revoke/"),
        client.get("/admin/auth/user/"),
        client.get("/admin/otp_totp/totpdevice/"),
        client.get("/admin/axes/accessattempt/"),
    ]
    assert [response.status_code for response in refused] == [403] * len(refused)
    assert Partner.objects.get(pk=partner.pk).name == "Platform A"
    assert list(
        PartnerKey.objects.filter(partner=partner).values_list("revoked_at", flat=True)
    ) == [None]

    admin = staff_login(Client(), superuser)
    assert admin.get(f"/admin/registry/partner/{partner.pk}/keys/issue/").status_code == 200
    assert admin.get("/admin/auth/user/").status_code == 200
    changed = admin.post(
        f"/admin/registry/partner/{partner.pk}/change/",
        {
            "name": "Renamed",
            "is_active": "on",
            "sync_scopes": ["intimate"],
            "webhook_url": "",
            "webhook_secret": "",
            "keys-TOTAL_FORMS": "1",
            "keys-INITIAL_FORMS": "1",
            "keys-0-id": str(partner_a.key.pk),
            "keys-0-partner": str(partner.pk),
        },
    )
    assert changed.status_code == 302, changed.content.decode()[:2000]
    assert Partner.objects.get(pk=partner.pk).name == "Renamed"


@pytest.mark.django_db
def test_staff_in_neither_role_see_nothing(partner_a: PartnerPersona) -> None:
    clerk = User.objects.create_user("clerk", password="a long clerk password", is_staff=True)
    client = staff_login(Client(), clerk)
    pages = ["/admin/", "/admin/registry/partner/", "/admin/statistics/", "/admin/statistics.csv"]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(LOGIN)
    login = client.get(LOGIN).content.decode()
    assert re.search(r"not authori[sz]ed", login)

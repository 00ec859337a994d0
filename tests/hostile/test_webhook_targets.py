"""Webhook addresses that are not globally routable are refused, at save time and at send time.

Nothing here connects anywhere: names resolve through a resolver the test hands in (or
'localhost', from /etc/hosts), and a tripwire fails the test if a socket is opened at all.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from registry.models import Partner
from registry.webhooks.sender import (
    IpAddress,
    TargetRefused,
    address_is_public,
    deliver,
    target_check,
    webhook_url_refusal,
)
from tests.conftest import staff_login

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# Each is, wraps or embeds a non-public address. The NAT64, IPv4-compatible, IPv4-translated,
# site-local, SRv6, 3fff::/20 and 192.0.0.0/24 ones were once taken for public.
NOT_PUBLIC = [
    "64:ff9b::7f00:1",  # NAT64 (well-known prefix) around 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254, the cloud metadata service
    "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
    "64:ff9b:1::7f00:1",  # local-use NAT64 around 127.0.0.1
    "64:ff9b:1:a9fe:a9:fe00::",  # local-use NAT64, 169.254.169.254 in RFC 6052's /48 layout
    "::7f00:1",  # IPv4-compatible 127.0.0.1 (deprecated)
    "::a9fe:a9fe",
    "::ffff:0:7f00:1",  # IPv4-translated (SIIT) 127.0.0.1
    "::ffff:0:a9fe:a9fe",
    "::ffff:7f00:1",  # IPv4-mapped 127.0.0.1
    "fec0::1",  # site-local (deprecated)
    "fee0::1",
    "100::1",  # discard-only
    "5f00::1",  # SRv6 SIDs
    "3fff::1",  # documentation
    "2001:db8::1",
    "2001::1",  # Teredo
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2002:7f00:1::",  # 6to4 around 127.0.0.1
    "2002:808:808::",  # 6to4, even around a public address: deprecated, a tunnel of its choosing
    "ff0e::1",  # multicast
    "::",
    "::1",
    "192.0.0.8",  # IPv4 dummy address
    "192.0.0.9",
    "192.0.0.170",  # NAT64 discovery
    "192.88.99.1",  # the former 6to4 relay anycast
    "198.51.100.7",
    "203.0.113.9",
    "240.0.0.1",
    "255.255.255.255",
    "0.1.2.3",
    "127.0.0.1",
    "169.254.169.254",
    "100.64.0.1",
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "::ffff:808:808"]
# Spellings of 127.0.0.1 the system's resolver reads as an address, no name service asked.
LOOPBACK_SPELLINGS = ["127.1", "0x7f.1", "2130706433", "017700000001"]


@pytest.fixture(autouse=True)
def _no_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail on any connection attempt: every refusal must come before one."""
    attempts: list[Any] = []

    def refuse(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        raise AssertionError(f"a connection to {address!r} was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts
    assert attempts == []


@pytest.fixture(autouse=True)
def _production_rules(settings: SettingsWrapper) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False


def _url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}/rempart"


def resolver_to(address: str) -> Any:
    """A resolver that answers ``address`` for hooks.partner.test, and fails for anything else."""

    def resolve(host: str, port: int) -> list[IpAddress]:
        if host != "hooks.partner.test":
            raise TargetRefused(f"cannot resolve {host!r}")
        return [ipaddress.ip_address(address)]

    return resolve


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_a_non_public_address_is_not_public(address: str) -> None:
    assert not address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_a_public_address_is_public(address: str) -> None:
    assert address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_a_literal_non_public_address_is_refused_without_resolving(address: str) -> None:
    def no_resolver(host: str, port: int) -> list[IpAddress]:
        raise AssertionError("a literal address was resolved")

    with pytest.raises(TargetRefused, match="non-public"):
        target_check(_url(address), resolver=no_resolver)


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_a_name_resolving_to_a_non_public_address_is_refused(address: str) -> None:
    with pytest.raises(TargetRefused, match="non-public"):
        target_check("https://hooks.partner.test/rempart", resolver=resolver_to(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_a_name_resolving_to_a_public_address_is_accepted(address: str) -> None:
    target = target_check("https://hooks.partner.test/rempart", resolver=resolver_to(address))

    assert target.address == address


@pytest.mark.parametrize("spelling", [*LOOPBACK_SPELLINGS, "localhost"])
def test_other_spellings_of_loopback_are_refused_by_the_system_resolver(spelling: str) -> None:
    with pytest.raises(TargetRefused, match="non-public"):
        target_check(f"https://{spelling}/rempart")


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "::ffff:0:7f00:1", "192.0.0.8"])
def test_a_delivery_to_a_non_public_address_is_refused_before_any_connection(
    address: str,
) -> None:
    result = deliver(
        url=_url(address), secret=SECRET, webhook_id="msg_1", timestamp=1, payload={"a": 1}
    )

    assert not result.delivered
    assert result.error.startswith("refused: ")


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_the_save_time_check_refuses_what_sending_would(address: str) -> None:
    refusal = webhook_url_refusal(
        "https://hooks.partner.test/rempart", resolver=resolver_to(address)
    )

    assert refusal is not None
    assert address.split("/")[0] in refusal or ipaddress.ip_address(address).compressed in refusal


def test_the_save_time_check_accepts_a_public_address() -> None:
    assert (
        webhook_url_refusal("https://hooks.partner.test/", resolver=resolver_to("8.8.8.8")) is None
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://[64:ff9b::7f00:1]/rempart",
        "https://[::ffff:0:a9fe:a9fe]/latest/meta-data",
        "https://[fec0::1]/rempart",
        "https://192.0.0.8/rempart",
        "https://localhost/rempart",
    ],  # ("https://127.1/" is no URL to Django's URL field already.)
)
@pytest.mark.django_db
def test_the_admin_refuses_to_save_a_non_public_webhook_address(url: str) -> None:
    admin = User.objects.create_superuser("admin", password="a long admin password")
    client = staff_login(Client(), admin)

    response = client.post(
        "/admin/registry/partner/add/",
        {
            "name": "Hooked Platform",
            "is_active": "on",
            "sync_scopes": ["intimate"],
            "webhook_url": url,
            "webhook_secret": SECRET,
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "The registry will not call this address" in response.content.decode()
    assert not Partner.objects.filter(name="Hooked Platform").exists()

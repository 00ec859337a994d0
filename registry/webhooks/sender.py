"""Signed webhooks to partners: signing (Standard Webhooks), target checks, and the HTTP sender.

A delivery carries three headers, as https://www.standardwebhooks.com specifies:

- ``webhook-id``: the delivery's id, the same on every retry, so a partner drops duplicates;
- ``webhook-timestamp``: this attempt's time, in whole seconds since the epoch;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` under the
  partner's secret (a ``whsec_<base64>`` secret is base64-decoded first, as the scheme says).

A target must be an https URL whose every resolved address is public. The address is checked
after DNS resolution, at send time, and the connection goes to the very address checked, so a
name that changes between the check and the connection (DNS rebinding) cannot reach inside the
network. Redirects are never followed. ``WEBHOOK_ALLOW_PRIVATE_TARGETS`` lifts the https and
address rules for development and tests only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
USER_AGENT = "Rempart-Webhooks/1"
_MAX_RESPONSE_BYTES = 64 * 1024

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):  # noqa: N818 - named for what happened
    """The webhook URL is not one the registry will call (scheme, host or resolved address)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked webhook target: where to connect, and what to say to it."""

    scheme: str
    host: str  # the name, for the Host header and TLS (SNI and certificate check)
    port: int
    path: str  # path and query
    address: str  # the resolved, checked address the connection goes to


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one attempt: delivered (a 2xx answer) or not, and why not."""

    delivered: bool
    error: str = ""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a partner secret: ``whsec_<base64>`` is decoded, anything else is UTF-8."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    return secret.encode()


def sign(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload_body(payload: dict[str, Any]) -> bytes:
    """The bytes sent (and signed) for a payload: compact, key-sorted, the same on every retry."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# IANA's special-purpose IPv4 registry, every block that is not globally reachable, and the
# whole of 192.0.0.0/24 (its two anycast services are no webhook endpoint). Written out rather
# than read from Python's ipaddress, whose answers differ between versions (3.11 calls
# 192.0.0.8 and fec0::/10 global).
_IPV4_NOT_PUBLIC = _networks(
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local: cloud metadata services
    "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # the former 6to4 relay anycast
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast address
)
# Addresses that carry an IPv4 address in their last 32 bits, which is what a connection reaches:
# IPv4-mapped, IPv4-translated (SIIT) and the well-known NAT64 prefix.
_IPV4_CARRIERS = _networks("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96")
# IPv6 unicast is routed only in 2000::/3; of it, these blocks are not public. 6to4 and Teredo
# (inside 2001::/23) are refused outright: both are deprecated, and each tunnels to an IPv4
# address of its own choosing.
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_IPV6_NOT_PUBLIC = _networks(
    "2001::/23",  # IETF protocol assignments, Teredo among them
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "3fff::/20",  # documentation
)


def address_is_public(address: IpAddress) -> bool:
    """True for a globally routable unicast address, and only for one.

    False for private, loopback, link-local, shared (CGNAT), multicast, reserved, documentation,
    benchmarking and unspecified IPv4 ranges, and for IPv6 outside global unicast (2000::/3:
    site-local, unique local, link-local, multicast, discard, the local-use NAT64 prefix, the
    deprecated IPv4-compatible form) or in its special blocks. An IPv6 address that carries an
    IPv4 address (mapped, translated, well-known NAT64) is judged by that IPv4 address.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in network for network in _IPV4_NOT_PUBLIC)
    if any(address in network for network in _IPV4_CARRIERS):
        return address_is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address not in _IPV6_GLOBAL_UNICAST:
        return False
    return not any(address in network for network in _IPV6_NOT_PUBLIC)


Resolver = Callable[[str, int], list[IpAddress]]


def resolve(host: str, port: int) -> list[IpAddress]:
    """The addresses ``host`` resolves to, through the system's resolver (literal forms too:
    ``127.1`` and ``2130706433`` are 127.0.0.1). Raises TargetRefused when there are none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetRefused(f"cannot resolve {host!r}: {error}") from error
    addresses: list[IpAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone
        parsed = ipaddress.ip_address(text)
        if parsed not in addresses:
            addresses.append(parsed)
    if not addresses:
        raise TargetRefused(f"{host!r} resolves to no address")
    return addresses


def target_check(
    url: str, *, allow_private: bool | None = None, resolver: Resolver = resolve
) -> Target:
    """Check ``url`` and resolve it with ``resolver``; raise TargetRefused unless the registry
    may call it. Nothing is connected to: the caller connects to the address returned.

    A literal address in the URL is checked as it is; a name, through every address it resolves
    to, which must all be public (a name with one private address among public ones is refused:
    the resolver may hand out either). With ``allow_private`` (default: the
    WEBHOOK_ALLOW_PRIVATE_TARGETS setting) http and any address are accepted.
    """
    if allow_private is None:
        allow_private = settings.WEBHOOK_ALLOW_PRIVATE_TARGETS
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(f"malformed URL: {error}") from error
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed_schemes:
        raise TargetRefused("a webhook URL must be https")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("a webhook URL must not carry credentials")
    host = parts.hostname
    if not host:
        raise TargetRefused("a webhook URL needs a host")
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses: list[IpAddress] = [ipaddress.ip_address(host.split("%", 1)[0])]
    except ValueError:
        addresses = resolver(host, port)
    if not allow_private:
        refused = [str(address) for address in addresses if not address_is_public(address)]
        if refused:
            raise TargetRefused(f"{host!r} resolves to a non-public address ({refused[0]})")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a checked address, verifying the certificate for the host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to a checked address (development and tests only)."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def webhook_url_refusal(url: str, *, resolver: Resolver = resolve) -> str | None:
    """Why the registry would refuse to call ``url`` (for the admin's form), or None.

    The check of every delivery, made at save time: the name is resolved now, and again, with
    the same rule, before each delivery (its addresses may change in between).
    """
    try:
        target_check(url, resolver=resolver)
    except TargetRefused as error:
        return f"The registry will not call this address: {error}."
    return None


def deliver(
    *, url: str, secret: str, webhook_id: str, timestamp: int, payload: dict[str, Any]
) -> SendResult:
    """POST one signed delivery to ``url``; never raises for the target's faults.

    Delivered means a 2xx answer. A refused target, a network error, a timeout, a redirect or
    any other status is a failed attempt, described in ``error`` (no secret, no body).
    """
    try:
        target = target_check(url)
    except TargetRefused as error:
        return SendResult(delivered=False, error=f"refused: {error}")
    body = payload_body(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body
        ),
    }
    timeout = float(settings.WEBHOOK_TIMEOUT_SECONDS)
    connection: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(target, timeout)
        if target.scheme == "https"
        else _PinnedHTTPConnection(target, timeout)
    )
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(_MAX_RESPONSE_BYTES)
        status = response.status
    except TimeoutError:
        return SendResult(delivered=False, error="timed out")
    except (OSError, http.client.HTTPException) as error:
        return SendResult(delivered=False, error=f"network error: {type(error).__name__}")
    finally:
        connection.close()
    if 200 <= status < 300:
        return SendResult(delivered=True)
    return SendResult(delivered=False, error=f"HTTP {status}")


def webhook_secret_new() -> str:
    """A new webhook signing secret: ``whsec_`` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()

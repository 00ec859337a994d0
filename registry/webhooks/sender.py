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


def address_is_public(address: IpAddress) -> bool:
    """True for a globally routable unicast address; False for private, loopback, link-local,
    multicast, reserved, shared (CGNAT), documentation and unspecified ranges, and for IPv6
    addresses that embed one of those (IPv4-mapped, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[IpAddress] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if any(not address_is_public(inner) for inner in embedded):
            return False
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int) -> list[IpAddress]:
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


def target_check(url: str, *, allow_private: bool | None = None) -> Target:
    """Check ``url`` and resolve it; raise TargetRefused unless the registry may call it.

    Every address the name resolves to must be public (a name with one private address among
    public ones is refused: the resolver may hand out either). With ``allow_private`` (default:
    the WEBHOOK_ALLOW_PRIVATE_TARGETS setting) http and any address are accepted.
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
    addresses = _resolve(host, port)
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

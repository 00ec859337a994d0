"""Signed receipts: what a person keeps, and can attach to a complaint, after registering photos,
adding some, or withdrawing their case.

A receipt is a short text that the service signs with Ed25519. It says which case, when, under
which protection, and how many photos, each by a short fingerprint of its hash
(registry.pdq.fingerprint: a digest that reveals none of the hash's bits). It never holds the
case secret, so a person can hand it to the police or a lawyer without giving them the power to
withdraw the case. Anyone can check it on the verify page, or offline with the public key.

The text is plain and line-based so that it survives being pasted into an e-mail or a complaint
form: verification ignores blank lines, surrounding spaces, Windows line endings and a signature
line wrapped over several lines. Every other change to the text breaks the signature.

    Rempart receipt
    Format: 1
    Service: https://registry.example.org
    Reference: RMP-7K3QD-M9X2A
    Event: registered
    Date: 2026-11-24T19:32:05Z
    Protection: intimate
    Photos: 2
    Photo 1: 3f2a9c01b7de
    Photo 2: 8e1d44c0a925
    Key: 5d1e0c9a2b7f4e61
    Signature: <base64 of 64 bytes>

A withdrawal receipt (``Event: withdrawn``) names the photos the withdrawal ended, dated when
matching stopped, and adds, before ``Key``, the date after which the registry deletes their hash
values (the withdrawal plus TOMBSTONE_RETENTION_DAYS, docs/privacy.md):

    Hashes deleted after: 2027-01-08T19:32:05Z

The signature covers the UTF-8 bytes of every line before ``Signature``, each followed by a line
feed. ``Key`` names the signing key (16 hex digits of the SHA-256 of its public key), so that
receipts signed before a key rotation still verify against RECEIPT_PREVIOUS_PUBLIC_KEYS.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from registry.pdq import fingerprint

TITLE = "Rempart receipt"
FORMAT = "1"
SIGNATURE_BYTES = 64
KEY_BYTES = 32
# Refuse absurd input before parsing it: a receipt of the largest case is about 14 kB.
MAX_TEXT_CHARS = 65_536

_FINGERPRINT = re.compile(r"[0-9a-f]{12}")
_BASE64 = re.compile(r"[A-Za-z0-9+/=]+")
_SIGNATURE_CHARS = 88  # base64 of 64 bytes
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class ReceiptEvent(enum.StrEnum):
    """What the receipt attests: a new case, photos added to a case, or its withdrawal."""

    REGISTERED = "registered"
    PHOTOS_ADDED = "photos-added"
    WITHDRAWN = "withdrawn"


class VerificationStatus(enum.StrEnum):
    """The outcome of checking a pasted receipt."""

    VALID = "valid"  # Signed by this service and unchanged since.
    TAMPERED = "tampered"  # A receipt of this service, but its text was changed after signing.
    INVALID = "invalid"  # Not a complete receipt, or signed by a key this service does not know.


@dataclass(frozen=True, slots=True)
class Receipt:
    """A signed receipt: its fields, the signing key's id and the signature."""

    service: str
    reference: str
    event: str
    issued_at: dt.datetime
    scope: str
    fingerprints: tuple[str, ...]
    key_id: str
    signature: str
    # Withdrawal receipts only: when the registry deletes the photos' hash values.
    hashes_deleted_after: dt.datetime | None = None

    @property
    def photos(self) -> int:
        return len(self.fingerprints)

    def text(self) -> str:
        """The receipt as the person keeps it: the signed lines, then the signature."""
        return "\n".join([*_signed_lines(self), f"Signature: {self.signature}"]) + "\n"


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a receipt; ``receipt`` is set only when it is valid."""

    status: VerificationStatus
    reason: str
    receipt: Receipt | None = None


def _signed_lines(receipt: Receipt) -> list[str]:
    return [
        TITLE,
        f"Format: {FORMAT}",
        f"Service: {receipt.service}",
        f"Reference: {receipt.reference}",
        f"Event: {receipt.event}",
        f"Date: {_date(receipt.issued_at)}",
        f"Protection: {receipt.scope}",
        f"Photos: {receipt.photos}",
        *(f"Photo {n}: {value}" for n, value in enumerate(receipt.fingerprints, start=1)),
        *(
            [f"Hashes deleted after: {_date(receipt.hashes_deleted_after)}"]
            if receipt.hashes_deleted_after is not None
            else []
        ),
        f"Key: {receipt.key_id}",
    ]


def _date(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime(_DATE_FORMAT)


def _message(lines: Sequence[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def decode_key(text: str) -> bytes:
    """Return the 32 bytes of a key written in base64; raise ValueError otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("not valid base64") from error
    if len(raw) != KEY_BYTES:
        raise ValueError(f"decodes to {len(raw)} bytes, not {KEY_BYTES}")
    return raw


def key_id(public_key: Ed25519PublicKey) -> str:
    """The short name of a public key printed on receipts (16 hex digits of its SHA-256)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def _private_key(encoded: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(decode_key(encoded))


@functools.lru_cache(maxsize=4)
def _public_key(encoded: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(decode_key(encoded))


def signing_key() -> Ed25519PrivateKey:
    """The service's receipt signing key, from settings.RECEIPT_SIGNING_KEY."""
    return _private_key(settings.RECEIPT_SIGNING_KEY)


def public_key() -> Ed25519PublicKey:
    """The public half of the current signing key."""
    return signing_key().public_key()


def public_key_base64() -> str:
    """The current public key as base64 of its 32 raw bytes."""
    raw = public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_pem() -> str:
    """The current public key in PEM (SubjectPublicKeyInfo), for OpenSSL and libraries."""
    return (
        public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def _verification_keys() -> dict[str, Ed25519PublicKey]:
    keys = [public_key()] + [_public_key(text) for text in settings.RECEIPT_PREVIOUS_PUBLIC_KEYS]
    return {key_id(key): key for key in keys}


def receipt_sign(
    *,
    reference: str,
    event: ReceiptEvent,
    issued_at: dt.datetime,
    scope: str,
    hashes: Sequence[bytes],
    hashes_deleted_after: dt.datetime | None = None,
) -> Receipt:
    """Sign a receipt for the photos whose original hashes are ``hashes``.

    ``issued_at`` (and ``hashes_deleted_after``, given for a withdrawal only) must be
    timezone-aware; the receipt keeps them to the second, in UTC. Nothing is stored: the same
    inputs give the same receipt (Ed25519 signatures are deterministic).
    """
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    if hashes_deleted_after is not None and hashes_deleted_after.tzinfo is None:
        raise ValueError("hashes_deleted_after must be timezone-aware")
    if (hashes_deleted_after is not None) != (event == ReceiptEvent.WITHDRAWN):
        raise ValueError("a withdrawal receipt, and only one, says when hashes are deleted")
    key = signing_key()
    unsigned = Receipt(
        service=settings.SITE_ROOT,
        reference=reference,
        event=str(event),
        issued_at=issued_at.astimezone(dt.UTC).replace(microsecond=0),
        scope=scope,
        fingerprints=tuple(fingerprint(value) for value in hashes),
        key_id=key_id(key.public_key()),
        signature="",
        hashes_deleted_after=(
            None
            if hashes_deleted_after is None
            else hashes_deleted_after.astimezone(dt.UTC).replace(microsecond=0)
        ),
    )
    signature = key.sign(_message(_signed_lines(unsigned)))
    return Receipt(
        service=unsigned.service,
        reference=unsigned.reference,
        event=unsigned.event,
        issued_at=unsigned.issued_at,
        scope=unsigned.scope,
        fingerprints=unsigned.fingerprints,
        key_id=unsigned.key_id,
        signature=base64.b64encode(signature).decode("ascii"),
        hashes_deleted_after=unsigned.hashes_deleted_after,
    )


def _split(text: str) -> tuple[list[str], str] | None:
    """The signed lines and the signature of a pasted receipt, or None if it has no shape."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        start = lines.index(TITLE)
    except ValueError:
        return None
    signature_at = next(
        (i for i in range(start, len(lines)) if lines[i].startswith("Signature:")), None
    )
    if signature_at is None:
        return None
    # A mail client may wrap the long signature line: base64 lines after it continue it, up to
    # the signature's length; anything else (a greeting, a signature block) is not the receipt.
    signature = "".join(lines[signature_at][len("Signature:") :].split())
    for line in lines[signature_at + 1 :]:
        if len(signature) >= _SIGNATURE_CHARS or not _BASE64.fullmatch(line):
            break
        signature += line
    return lines[start:signature_at], signature


def _fields(lines: Sequence[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, separator, value = line.partition(":")
        if separator:
            fields.setdefault(name.strip(), value.strip())
    return fields


def receipt_verify(text: str) -> Verification:
    """Check a pasted receipt against this service's keys.

    Returns VALID with the parsed receipt when the signature holds; TAMPERED when the text is a
    receipt whose signature does not match it (a changed date, count or fingerprint); INVALID when
    the text is not a complete receipt or names a key this service does not have. ``reason`` is a
    stable code: ``valid``, ``bad_signature``, ``malformed`` or ``unknown_key``.
    """
    if len(text) > MAX_TEXT_CHARS:
        return Verification(VerificationStatus.INVALID, "malformed")
    split = _split(text)
    if split is None:
        return Verification(VerificationStatus.INVALID, "malformed")
    lines, signature_text = split
    fields = _fields(lines)
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != SIGNATURE_BYTES or "Key" not in fields:
        return Verification(VerificationStatus.INVALID, "malformed")
    key = _verification_keys().get(fields["Key"])
    if key is None:
        return Verification(VerificationStatus.INVALID, "unknown_key")
    try:
        key.verify(signature, _message(lines))
    except InvalidSignature:
        return Verification(VerificationStatus.TAMPERED, "bad_signature")
    receipt = _parse_signed(lines, fields, signature_text)
    if receipt is None:  # pragma: no cover - only this service signs, and only well-formed text
        return Verification(VerificationStatus.INVALID, "malformed")
    return Verification(VerificationStatus.VALID, "valid", receipt)


def _parse_signed(lines: Sequence[str], fields: dict[str, str], signature: str) -> Receipt | None:
    """Read the fields of a receipt whose signature holds (so this service wrote it)."""
    try:
        issued_at = dt.datetime.strptime(fields["Date"], _DATE_FORMAT).replace(tzinfo=dt.UTC)
        count = int(fields["Photos"])
        fingerprints = tuple(fields[f"Photo {n}"] for n in range(1, count + 1))
        deleted = fields.get("Hashes deleted after")
        receipt = Receipt(
            service=fields["Service"],
            reference=fields["Reference"],
            event=fields["Event"],
            issued_at=issued_at,
            scope=fields["Protection"],
            fingerprints=fingerprints,
            key_id=fields["Key"],
            signature=signature,
            hashes_deleted_after=(
                None
                if deleted is None
                else dt.datetime.strptime(deleted, _DATE_FORMAT).replace(tzinfo=dt.UTC)
            ),
        )
    except (KeyError, ValueError):
        return None
    if fields.get("Format") != FORMAT or not all(_FINGERPRINT.fullmatch(f) for f in fingerprints):
        return None
    if _signed_lines(receipt) != list(lines):
        return None
    return receipt

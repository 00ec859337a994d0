"""Signed receipts: they verify, survive being pasted, and expose any change to their text."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.test import override_settings

from registry import receipts
from registry.pdq import fingerprint
from registry.receipts import ReceiptEvent, VerificationStatus, receipt_sign, receipt_verify
from tests.factories import random_hash

ISSUED_AT = dt.datetime(2026, 11, 24, 19, 32, 5, 123456, tzinfo=dt.UTC)
OTHER_KEY = base64.b64encode(b"another-registry-signing-key-000").decode()
ROOT = Path(__file__).resolve().parents[2]


def _receipt(photos: int = 2) -> receipts.Receipt:
    return receipt_sign(
        reference="RMP-7K3QD-M9X2A",
        event=ReceiptEvent.REGISTERED,
        issued_at=ISSUED_AT,
        scope="intimate",
        hashes=[random_hash() for _ in range(photos)],
    )


def test_a_signed_receipt_verifies_and_reads_back_its_fields() -> None:
    hashes = [random_hash(), random_hash()]
    receipt = receipt_sign(
        reference="RMP-7K3QD-M9X2A",
        event=ReceiptEvent.REGISTERED,
        issued_at=ISSUED_AT,
        scope="no_sexual_edit",
        hashes=hashes,
    )

    verification = receipt_verify(receipt.text())

    assert verification.status is VerificationStatus.VALID
    assert verification.receipt == receipt
    assert receipt.issued_at == ISSUED_AT.replace(microsecond=0)
    assert receipt.fingerprints == tuple(fingerprint(value) for value in hashes)
    assert receipt.photos == 2


def test_the_receipt_text_has_the_documented_shape_and_no_hash() -> None:
    receipt = _receipt()
    lines = receipt.text().splitlines()

    assert lines[:8] == [
        "Rempart receipt",
        "Format: 1",
        f"Service: {settings.SITE_ROOT}",
        "Reference: RMP-7K3QD-M9X2A",
        "Event: registered",
        "Date: 2026-11-24T19:32:05Z",
        "Protection: intimate",
        "Photos: 2",
    ]
    assert lines[8].startswith("Photo 1: ")
    assert lines[10] == f"Key: {receipts.key_id(receipts.public_key())}"
    assert lines[11].startswith("Signature: ")
    assert not re.search(r"[0-9a-f]{32}", receipt.text())


def test_signing_is_deterministic() -> None:
    hashes = [random_hash()]
    first = receipt_sign(
        reference="RMP-7K3QD-M9X2A",
        event=ReceiptEvent.PHOTOS_ADDED,
        issued_at=ISSUED_AT,
        scope="intimate",
        hashes=hashes,
    )
    second = receipt_sign(
        reference="RMP-7K3QD-M9X2A",
        event=ReceiptEvent.PHOTOS_ADDED,
        issued_at=ISSUED_AT,
        scope="intimate",
        hashes=hashes,
    )
    assert first.signature == second.signature


def test_a_naive_date_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        receipt_sign(
            reference="RMP-7K3QD-M9X2A",
            event=ReceiptEvent.REGISTERED,
            issued_at=dt.datetime(2026, 11, 24),
            scope="intimate",
            hashes=[random_hash()],
        )


def test_a_receipt_survives_being_pasted_into_a_mail() -> None:
    text = _receipt().text()
    signed, signature = text.rstrip("\n").rsplit("Signature: ", 1)
    wrapped = signed + "Signature: " + signature[:40] + "\n" + signature[40:]
    pasted = (
        "Hello, here is my receipt:\r\n\r\n"
        + "\r\n".join("   " + line + "  " for line in wrapped.splitlines())
        + "\r\n\r\nRegards,\r\nA."
    )

    assert receipt_verify(pasted).status is VerificationStatus.VALID


@pytest.mark.parametrize(
    ("find", "replace"),
    [
        ("Photos: 2", "Photos: 3"),
        ("Date: 2026-11-24T19:32:05Z", "Date: 2026-11-20T19:32:05Z"),
        ("Protection: intimate", "Protection: no_sexual_edit"),
        ("Reference: RMP-7K3QD-M9X2A", "Reference: RMP-7K3QD-M9X2B"),
        ("Event: registered", "Event: photos-added"),
    ],
)
def test_any_change_to_a_field_shows_as_tampering(find: str, replace: str) -> None:
    text = _receipt().text()
    assert find in text

    verification = receipt_verify(text.replace(find, replace))

    assert verification.status is VerificationStatus.TAMPERED
    assert verification.reason == "bad_signature"
    assert verification.receipt is None


def test_a_removed_or_changed_photo_line_shows_as_tampering() -> None:
    lines = _receipt().text().splitlines()
    without_photo = "\n".join(line for line in lines if not line.startswith("Photo 2:"))
    changed = "\n".join(
        "Photo 1: 000000000000" if line.startswith("Photo 1:") else line for line in lines
    )

    assert receipt_verify(without_photo).status is VerificationStatus.TAMPERED
    assert receipt_verify(changed).status is VerificationStatus.TAMPERED


def test_a_changed_signature_shows_as_tampering() -> None:
    receipt = _receipt()
    signature = bytearray(base64.b64decode(receipt.signature))
    signature[0] ^= 1
    forged = receipt.text().replace(receipt.signature, base64.b64encode(signature).decode())

    assert receipt_verify(forged).status is VerificationStatus.TAMPERED


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a receipt at all",
        "Rempart receipt\nFormat: 1\nReference: RMP-7K3QD-M9X2A\n",
        "x" * (receipts.MAX_TEXT_CHARS + 1),
    ],
    ids=["empty", "prose", "no-signature", "huge"],
)
def test_text_that_is_not_a_complete_receipt_is_invalid(text: str) -> None:
    verification = receipt_verify(text)

    assert verification.status is VerificationStatus.INVALID
    assert verification.reason == "malformed"


def test_a_truncated_or_garbled_signature_is_invalid() -> None:
    receipt = _receipt()
    truncated = receipt.text().replace(receipt.signature, receipt.signature[:20])
    garbled = receipt.text().replace(receipt.signature, "not*base64*at*all")

    assert receipt_verify(truncated).status is VerificationStatus.INVALID
    assert receipt_verify(garbled).status is VerificationStatus.INVALID


def test_a_receipt_of_another_registry_is_invalid() -> None:
    with override_settings(RECEIPT_SIGNING_KEY=OTHER_KEY):
        foreign = _receipt().text()

    verification = receipt_verify(foreign)

    assert verification.status is VerificationStatus.INVALID
    assert verification.reason == "unknown_key"


def test_receipts_signed_before_a_key_rotation_still_verify() -> None:
    old_receipt = _receipt().text()
    old_public = receipts.public_key_base64()

    with override_settings(
        RECEIPT_SIGNING_KEY=OTHER_KEY, RECEIPT_PREVIOUS_PUBLIC_KEYS=[old_public]
    ):
        assert receipt_verify(old_receipt).status is VerificationStatus.VALID
        assert receipt_verify(_receipt().text()).status is VerificationStatus.VALID
    with override_settings(RECEIPT_SIGNING_KEY=OTHER_KEY):
        assert receipt_verify(old_receipt).reason == "unknown_key"


def test_anyone_can_verify_a_receipt_offline_with_the_published_key() -> None:
    """What the verify page documents: the signature covers each line before it, plus a LF."""
    text = _receipt().text()
    lines = text.splitlines()
    message = "".join(f"{line}\n" for line in lines[:-1]).encode()
    signature = base64.b64decode(lines[-1].removeprefix("Signature: "))
    key = serialization.load_pem_public_key(receipts.public_key_pem().encode())
    assert isinstance(key, Ed25519PublicKey)

    key.verify(signature, message)  # Raises InvalidSignature otherwise.
    assert base64.b64decode(receipts.public_key_base64()) == key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [("not base64!", "not valid base64"), (base64.b64encode(b"short").decode(), "5 bytes")],
)
def test_decode_key_names_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        receipts.decode_key(text)


def test_a_malformed_signing_key_stops_the_process_at_start_up() -> None:
    environment = {**os.environ, "RECEIPT_SIGNING_KEY": "too-short", "DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**environment, "DJANGO_SETTINGS_MODULE": "registry.settings"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "RECEIPT_SIGNING_KEY: a key is base64 of 32 bytes" in result.stderr


# --- Withdrawal receipts --------------------------------------------------------------------


def _withdrawal(deleted_after: dt.datetime) -> receipts.Receipt:
    return receipt_sign(
        reference="RMP-7K3QD-M9X2A",
        event=ReceiptEvent.WITHDRAWN,
        issued_at=ISSUED_AT,
        scope="intimate",
        hashes=[random_hash(), random_hash()],
        hashes_deleted_after=deleted_after,
    )


def test_a_withdrawal_receipt_signs_when_the_hashes_are_deleted() -> None:
    deleted_after = ISSUED_AT + dt.timedelta(days=45)
    receipt = _withdrawal(deleted_after)
    lines = receipt.text().splitlines()

    assert "Event: withdrawn" in lines
    assert lines[-3] == "Hashes deleted after: 2027-01-08T19:32:05Z"
    assert lines[-2].startswith("Key: ")
    verification = receipt_verify(receipt.text())
    assert verification.status is VerificationStatus.VALID
    assert verification.receipt == receipt
    assert verification.receipt.hashes_deleted_after == deleted_after.replace(microsecond=0)


def test_a_changed_deletion_date_breaks_the_withdrawal_receipt() -> None:
    text = _withdrawal(ISSUED_AT + dt.timedelta(days=45)).text()
    changed = text.replace("Hashes deleted after: 2027-01-08", "Hashes deleted after: 2027-01-09")
    dropped = "\n".join(line for line in text.splitlines() if "deleted after" not in line)

    assert receipt_verify(changed).status is VerificationStatus.TAMPERED
    assert receipt_verify(dropped).status is VerificationStatus.TAMPERED


@pytest.mark.parametrize(
    ("event", "deleted_after"),
    [
        (ReceiptEvent.WITHDRAWN, None),
        (ReceiptEvent.REGISTERED, ISSUED_AT + dt.timedelta(days=45)),
        (ReceiptEvent.WITHDRAWN, dt.datetime(2027, 1, 8)),  # naive
    ],
)
def test_only_a_withdrawal_receipt_says_when_hashes_are_deleted(
    event: ReceiptEvent, deleted_after: dt.datetime | None
) -> None:
    with pytest.raises(ValueError, match=r"aware|a withdrawal receipt"):
        receipt_sign(
            reference="RMP-7K3QD-M9X2A",
            event=event,
            issued_at=ISSUED_AT,
            scope="intimate",
            hashes=[random_hash()],
            hashes_deleted_after=deleted_after,
        )

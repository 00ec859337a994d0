"""No secret, IP address or full hash reaches a log line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from django.test import Client

from registry import services
from registry.redaction import RedactFilter, redact
from tests.factories import register_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def console_output() -> Iterator[io.StringIO]:
    """What the configured console handler writes, as an operator's log would hold it."""
    stream = io.StringIO()
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactFilter) for f in h.filters)
    )
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.setLevel(level)
        handler.setStream(previous)


def test_a_registration_and_withdrawal_log_no_secret_and_no_hash(
    console_output: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registered = register_case(images=2)
    services.case_check_secret(reference=registered.case.reference, secret=registered.secret)
    services.case_withdraw(case=registered.case)
    Client(REMOTE_ADDR="203.0.113.77").get("/")

    written = console_output.getvalue() + "\n".join(
        record.getMessage() for record in caplog.records
    )
    assert "case created with 2 image(s)" in written  # the scenario did log
    assert registered.secret not in written
    assert "203.0.113.77" not in written
    for image in registered.images:
        for value in image.hashes:
            assert value.hex() not in written
            assert value.hex()[:16] not in written


def test_the_redaction_filter_removes_what_a_careless_line_would_leak(
    console_output: io.StringIO,
) -> None:
    secret, value = "8F2K-QX7M-3DWA-P9ZN", "ab" * 32
    logging.getLogger("careless").warning(
        "got %s from 198.51.100.4 and 2001:db8::7 with %s", value, secret
    )
    written = console_output.getvalue()
    assert "[hash] from [ip] and [ip] with [secret]" in written
    for leaked in (secret, value, "198.51.100.4", "2001:db8::7"):
        assert leaked not in written


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "case RMP-7K3QD-M9X2A at 12:30:45 took 3.5 ms, 10 of 20 images"
    assert redact(text) == text

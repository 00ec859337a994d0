"""The production configuration passes Django's deployment checks; the OpenAPI schema is clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRODUCTION_LIKE = {
    "DEBUG": "0",
    "SECRET_KEY": "a-long-random-production-like-secret-key-0123456789-abcdefghijklmnop",
    "KEY_PEPPER": "a-production-like-pepper",
    "RECEIPT_SIGNING_KEY": "cHJvZHVjdGlvbi1saWtlLXJlY2VpcHQta2V5LTAwMDA=",
    "ALLOWED_HOSTS": "registry.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://registry.example.org",
    "SECURE_HSTS_PRELOAD": "1",
    "SECURE_SSL_REDIRECT": "1",
    "INDEX_AUTOSTART": "0",
    "WITHDRAWAL_JOURNAL": "/var/lib/rempart/withdrawals.jsonl",
    "OPERATOR_NAME": "Association Exemple",
    "OPERATOR_ADDRESS": "1 rue de l'Exemple, 75001 Paris",
    "OPERATOR_CONTACT_EMAIL": "contact@registry.example.org",
    "OPERATOR_PUBLICATION_DIRECTOR": "Camille Exemple",
    "OPERATOR_HOST": "Hébergeur Exemple, 2 avenue de l'Exemple, 59100 Roubaix",
}


def _manage(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        # As a server would run: not with the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE.
        env={
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            **PRODUCTION_LIKE,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_passes_with_production_settings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_when_withdrawals_are_journalled_nowhere() -> None:
    result = _run_without_journal()
    assert result.returncode != 0
    assert "registry.W001" in result.stdout + result.stderr


def _run_without_journal() -> subprocess.CompletedProcess[str]:
    saved = PRODUCTION_LIKE.pop("WITHDRAWAL_JOURNAL")
    try:
        return _manage("check", "--deploy", "--fail-level", "WARNING")
    finally:
        PRODUCTION_LIKE["WITHDRAWAL_JOURNAL"] = saved


def test_check_deploy_warns_while_the_operator_is_not_named() -> None:
    saved = {name: PRODUCTION_LIKE.pop(name) for name in ("OPERATOR_NAME", "OPERATOR_HOST")}
    try:
        result = _manage("check", "--deploy", "--fail-level", "WARNING")
    finally:
        PRODUCTION_LIKE.update(saved)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "registry.W002" in output
    assert "OPERATOR_NAME, OPERATOR_HOST not set" in output
    assert "OPERATOR_CONTACT_EMAIL" not in output


def test_the_openapi_schema_generates_without_a_warning_and_validates() -> None:
    result = _manage("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)
    assert result.returncode == 0, result.stdout + result.stderr

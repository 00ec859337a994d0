"""Test defaults for a bare ``pytest``: the values ``make test`` passes (its TEST_ENV).

Loaded as a plugin (``-p tests.environment`` in pyproject's addopts) because pytest-django loads
the settings before any conftest. A variable already set, as ``make test`` sets them all, wins.
``DOTENV_PATH`` is empty so that a developer's ``.env`` never reaches the tests.
"""

from __future__ import annotations

import os

TEST_ENVIRONMENT = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/rempart",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "SECRET_KEY": "test-only-secret-key",
    "KEY_PEPPER": "test-only-pepper",
    "DEBUG": "0",
    "SECURE_SSL_REDIRECT": "0",
    "RECEIPT_SIGNING_KEY": "dGVzdC1vbmx5LXJlY2VpcHQta2V5LTAwMDAwMDAwMDA=",
    "DOTENV_PATH": "",
}

for _name, _value in TEST_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)

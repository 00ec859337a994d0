"""Settings helpers fail loudly on malformed values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from registry.env import env_bool, env_int, env_list, env_postgres, env_str


def test_env_str_reads_the_value_or_the_default() -> None:
    assert env_str("X", environ={"X": "value"}) == "value"
    assert env_str("X", "fallback", environ={}) == "fallback"


def test_env_str_requires_a_value_without_default() -> None:
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is required"):
        env_str("SECRET_KEY", environ={})


def test_env_str_reads_a_secret_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pepper"
    path.write_text("from-a-file\n")
    assert env_str("KEY_PEPPER", environ={"KEY_PEPPER_FILE": str(path)}) == "from-a-file"


def test_env_str_refuses_both_value_and_file(tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_str("KEY_PEPPER", environ={"KEY_PEPPER": "a", "KEY_PEPPER_FILE": str(tmp_path)})


def test_env_str_names_an_unreadable_file() -> None:
    with pytest.raises(ImproperlyConfigured, match="KEY_PEPPER_FILE"):
        env_str("KEY_PEPPER", environ={"KEY_PEPPER_FILE": "/nonexistent/pepper"})


@pytest.mark.parametrize(
    ("raw", "value"), [("1", True), ("yes", True), ("0", False), ("off", False)]
)
def test_env_bool_reads_the_usual_spellings(raw: str, value: bool) -> None:
    assert env_bool("DEBUG", not value, environ={"DEBUG": raw}) is value


def test_env_bool_refuses_anything_else() -> None:
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be a boolean"):
        env_bool("DEBUG", False, environ={"DEBUG": "maybe"})


def test_env_int_refuses_non_integers_and_values_out_of_bounds() -> None:
    assert env_int("N", 5, environ={"N": " 7 "}) == 7
    with pytest.raises(ImproperlyConfigured, match="must be an integer"):
        env_int("N", 5, environ={"N": "7.5"})
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("N", 5, minimum=1, environ={"N": "0"})
    with pytest.raises(ImproperlyConfigured, match="at most 9"):
        env_int("N", 5, maximum=9, environ={"N": "10"})


def test_env_list_splits_on_commas_and_drops_blanks() -> None:
    assert env_list("HOSTS", environ={"HOSTS": "a.example, b.example,,"}) == [
        "a.example",
        "b.example",
    ]


def test_env_postgres_reads_a_url_keeping_its_options() -> None:
    url = "postgres://rempart@127.0.0.1:5433/rempart?sslmode=require&options=-c%20work_mem%3D8MB"

    database = env_postgres("URL", read_only=True, environ={"URL": url})

    assert database is not None
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("127.0.0.1", 5433, "rempart")
    assert database["OPTIONS"] == {
        "sslmode": "require",
        "options": "-c work_mem=8MB -c default_transaction_read_only=on",
    }
    plain = env_postgres("URL", environ={"URL": url})
    assert plain is not None
    assert plain["OPTIONS"]["options"] == "-c work_mem=8MB"
    assert env_postgres("URL", environ={"URL": ""}) is None


def test_env_postgres_refuses_another_engine() -> None:
    with pytest.raises(ImproperlyConfigured, match="URL must point to PostgreSQL"):
        env_postgres("URL", environ={"URL": "sqlite:///rempart.sqlite3"})


def _databases(**environment: str) -> subprocess.CompletedProcess[str]:
    """The DATABASES a fresh process builds from the test environment and ``environment``."""
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps({alias: {'HOST': d.get('HOST'), 'PORT': d.get('PORT'), "
        "'OPTIONS': d.get('OPTIONS', {})} for alias, d in settings.DATABASES.items()}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "registry.settings", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_replica_url_adds_a_read_only_replica_alias() -> None:
    result = _databases(
        DATABASE_URL="postgres://rempart@127.0.0.1:5432/rempart",
        DATABASE_REPLICA_URL="postgres://rempart@127.0.0.1:5433/rempart",
    )

    assert result.returncode == 0, result.stderr
    databases = json.loads(result.stdout)
    assert set(databases) == {"default", "replica"}
    assert databases["replica"]["PORT"] == 5433
    assert databases["replica"]["OPTIONS"]["options"] == "-c default_transaction_read_only=on"


def test_without_a_replica_url_there_is_only_the_primary() -> None:
    result = _databases(DATABASE_URL="postgres://rempart@127.0.0.1:5432/rempart")

    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"default"}


def test_a_replica_needs_postgresql_on_both_sides() -> None:
    no_primary = _databases(DATABASE_URL="", DATABASE_REPLICA_URL="postgres://r@127.0.0.1/r")
    not_postgres = _databases(DATABASE_REPLICA_URL="mysql://r@127.0.0.1/r")

    assert "DATABASE_REPLICA_URL needs DATABASE_URL set to PostgreSQL" in no_primary.stderr
    assert "DATABASE_REPLICA_URL must point to PostgreSQL" in not_postgres.stderr

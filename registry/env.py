"""Typed readers for settings held in environment variables.

Every setting of the registry comes from the environment. These helpers fail loudly, with
``ImproperlyConfigured`` naming the variable, when a value is present but malformed, so that a
typo in a deployment stops the process at start-up instead of silently falling back to a
default. Secrets may also be given as a path in ``<NAME>_FILE`` (Docker and systemd credentials).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def env_str(
    name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None
) -> str:
    """Return ``name`` (or the contents of the file named by ``<name>_FILE``), else ``default``.

    Raises ImproperlyConfigured when neither is set and no default is given.
    """
    environ = os.environ if environ is None else environ
    file_path = environ.get(f"{name}_FILE")
    if file_path:
        if name in environ:
            raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
        try:
            with open(file_path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as error:
            raise ImproperlyConfigured(
                f"{name}_FILE: cannot read {file_path!r}: {error}"
            ) from error
    value = environ.get(name)
    if value is not None:
        return value
    if default is None:
        raise ImproperlyConfigured(f"The environment variable {name} is required.")
    return default


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    """Return ``name`` read as a boolean (1/0, true/false, yes/no, on/off)."""
    raw = env_str(name, "1" if default else "0", environ=environ).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}.")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Return ``name`` read as an integer, checked against optional bounds."""
    raw = env_str(name, str(default), environ=environ).strip()
    try:
        value = int(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from error
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}.")
    return value


def env_list(
    name: str, default: str = "", *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Return ``name`` read as a comma-separated list, blanks dropped."""
    raw = env_str(name, default, environ=environ)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_postgres(
    name: str, *, read_only: bool = False, environ: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """Return the PostgreSQL database that the URL in ``name`` names, as Django's DATABASES
    entry (connections kept 60 s, checked before reuse); None when ``name`` is empty.

    ``read_only`` opens every session read-only (``default_transaction_read_only``), so that a
    write sent there fails even if the URL names a primary.
    """
    url = env_str(name, "", environ=environ)
    if not url:
        return None
    try:
        database: dict[str, Any] = dict(
            dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
        )
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} is malformed: {error}") from error
    if database.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"{name} must point to PostgreSQL (postgres://...).")
    if read_only:
        options: dict[str, Any] = {**(database.get("OPTIONS") or {})}
        given = options.get("options", "")
        options["options"] = f"{given} -c default_transaction_read_only=on".strip()
        database["OPTIONS"] = options
    return database

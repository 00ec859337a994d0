"""The development environment file (``.env``): written by ``make run``, read by the settings.

``make run`` writes ``.env`` at the repository root once, with ``DEBUG=1`` and freshly generated
secrets (mode 0600; git ignores it), so that every ``manage.py`` command, the server and Celery
all start with the same development settings and nobody has to export anything. The settings
read it before anything else; a variable of the real environment always wins over the file.
Production has no ``.env``: its variables come from the service manager (``/etc/rempart/env``).

``python -m registry.dotenv [PATH]`` writes the file when it does not exist yet.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from collections.abc import MutableMapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_NAME_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def dotenv_parse(text: str, *, source: str = ".env") -> dict[str, str]:
    """Read ``NAME=value`` lines (blank lines and ``#`` comments skipped, an optional
    ``export`` prefix, a value optionally in matching quotes, taken literally).

    Raises ImproperlyConfigured naming ``source`` and the line when a line is not of that form.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, separator, value = line.partition("=")
        name = name.strip()
        if not separator or not name or not set(name) <= _NAME_CHARACTERS or name[0].isdigit():
            raise ImproperlyConfigured(f"{source}, line {number}: expected NAME=value.")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def dotenv_load(path: Path, *, environ: MutableMapping[str, str] | None = None) -> None:
    """Add the variables of the file at ``path`` (if it exists) to ``environ``.

    A variable already in ``environ`` is kept, and so is one given there as ``<NAME>_FILE``
    (or as ``NAME`` for a file's ``<NAME>_FILE``): the real environment wins.
    """
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except OSError as error:
        raise ImproperlyConfigured(f"{path}: cannot read it: {error}") from error
    for name, value in dotenv_parse(text, source=str(path)).items():
        given = {name, f"{name}_FILE", name.removesuffix("_FILE")}
        if not given & environ.keys():
            environ[name] = value


def dotenv_development_text() -> str:
    """A development ``.env``: DEBUG on and new random secrets."""
    receipt_key = base64.b64encode(secrets.token_bytes(32)).decode()
    return (
        "# Development settings, written by `make run` and read by manage.py, the server and\n"
        "# Celery. Generated secrets: keep this file private; never use it in production.\n"
        "# A variable set in the environment wins over this file. See deploy/env.example.\n"
        "DEBUG=1\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"KEY_PEPPER={secrets.token_urlsafe(32)}\n"
        f"RECEIPT_SIGNING_KEY={receipt_key}\n"
    )


def dotenv_write_development(path: Path) -> bool:
    """Write a development ``.env`` at ``path``, readable by its owner only (mode 0600).

    Returns False, changing nothing, when the file exists already (its secrets are kept: the
    receipts and partner keys made with them stay valid).
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(dotenv_development_text())
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m registry.dotenv [PATH]``: write the development file unless it exists."""
    arguments = sys.argv[1:] if argv is None else argv
    path = Path(arguments[0] if arguments else ".env")
    if dotenv_write_development(path):
        print(f"Wrote {path} (development settings, new secrets; mode 0600).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

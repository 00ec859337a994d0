"""Plain reads written out in SQL, tried once more when the kept connection was dropped.

The lean match route (api/lean.py) does not check a kept connection before each call, as
Django does (``SELECT 1``, CONN_HEALTH_CHECKS: a second round trip for every call that reads).
Its reads, the partner key and the confirmation of candidates, go through ``rows`` instead: a
connection the server dropped meanwhile (a restart, a network cut) fails the read, is closed,
and the read is tried once more on a new connection. Reads only, outside a transaction only; a
second failure is the caller's (a 503).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper


def rows(sql: str, params: Sequence[Any], alias: str = DEFAULT_DB_ALIAS) -> list[tuple[Any, ...]]:
    """Every row ``sql`` reads on ``alias``; once more on a new connection if the kept one was
    dropped."""
    connection = connections[alias]
    try:
        return _rows(connection, sql, params)
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        connection.close()
        return _rows(connection, sql, params)


def _rows(
    connection: BaseDatabaseWrapper, sql: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found: list[tuple[Any, ...]] = cursor.fetchall()
    return found

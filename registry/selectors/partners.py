"""The partner key check: one HMAC on every partner request, and an indexed read on a key's
first use in a process (registry.keycache keeps it until a change to it is notified)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from registry import dbreads
from registry.keycache import key_cache
from registry.keys import digests_equal, key_digest, parse_key
from registry.models import Partner, PartnerKey
from registry.services.partners import ModelT


@functools.cache
def _key_read_sql() -> str:
    quote = connection.ops.quote_name
    columns = [f"k.{quote(field.column)}" for field in PartnerKey._meta.concrete_fields] + [
        f"p.{quote(field.column)}" for field in Partner._meta.concrete_fields
    ]
    return (
        f"SELECT {', '.join(columns)} FROM {quote(PartnerKey._meta.db_table)} k "  # noqa: S608
        f"JOIN {quote(Partner._meta.db_table)} p ON p.{quote(Partner._meta.pk.column)} = "
        f"k.{quote(PartnerKey._meta.get_field('partner').column)} WHERE k.lookup_id = %s"
    )


@functools.cache
def _row_converters(model: type[Model], vendor: str) -> list[tuple[Any, list[Any]]]:
    """What the ORM applies to each selected column: the backend's converters, then the
    field's (the same for every connection to one kind of database)."""
    found = []
    for field in model._meta.concrete_fields:
        column: Any = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        found.append((column, converters))
    return found


def _from_row(model: type[ModelT], values: Sequence[Any]) -> ModelT:
    converted = []
    for (column, converters), value in zip(
        _row_converters(model, connection.vendor), values, strict=True
    ):
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    names = [field.attname for field in model._meta.concrete_fields]
    return model.from_db(connection.alias, names, converted)


def _key_read(lookup_id: str) -> PartnerKey | None:
    """The key with ``lookup_id`` and its partner, in one indexed read.

    The same query as ``select_related("partner").filter(lookup_id=...)``, written out once:
    building it through the ORM cost several times the database's own work, on every partner
    request (tests/load/).
    """
    found = dbreads.rows(_key_read_sql(), [lookup_id])
    if not found:
        return None
    row = found[0]
    split = len(PartnerKey._meta.concrete_fields)
    key = _from_row(PartnerKey, row[:split])
    key.partner = _from_row(Partner, row[split:])
    return key


def partner_key_authenticate(raw: str) -> PartnerKey | None:
    """Return the usable key whose text is ``raw``, or None.

    One HMAC, and one indexed read unless this process holds the key already: the cache
    (registry.keycache) drops a key as soon as PostgreSQL notifies a change to it, on every
    process, so a revocation takes effect within a second everywhere. Usability (revoked,
    expired, partner inactive) is checked here, on every call, rather than in SQL: the
    plainest query is the cheapest, and an expiry date passes without any notice.
    """
    parsed = parse_key(raw)
    if parsed is None:
        return None
    key = key_cache.get(parsed.lookup_id, _key_read)
    if key is None:
        return None
    if not digests_equal(key.digest, key_digest(parsed.raw, settings.KEY_PEPPER)):
        return None
    if not key.is_usable(now=timezone.now()):
        return None
    return key


def participating_platforms() -> list[str]:
    """The names of the active partners that agreed to be named to people, alphabetically."""
    rows = Partner.objects.filter(is_active=True, listed_publicly=True).values_list(
        "public_name", "name"
    )
    return sorted((public or name for public, name in rows), key=str.casefold)

"""Notify web processes of every change to a partner key or a partner (registry.keycache).

On PostgreSQL only: a trigger on each table sends ``NOTIFY registry_partner_keys`` in the
changing transaction, so that the notice is delivered when it commits. The payload is the key's
lookup id, or ``*`` for a partner (all of its keys). Other databases have no LISTEN; there the
cache is off and every request reads the key.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

_CREATE = """
CREATE OR REPLACE FUNCTION registry_partner_key_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('registry_partner_keys', OLD.lookup_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION registry_partner_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('registry_partner_keys', '*');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER registry_partner_key_changed
    AFTER UPDATE OR DELETE ON api_partnerkey
    FOR EACH ROW EXECUTE FUNCTION registry_partner_key_notify();

CREATE TRIGGER registry_partner_changed
    AFTER UPDATE OR DELETE ON api_partner
    FOR EACH ROW EXECUTE FUNCTION registry_partner_notify();

-- TRUNCATE fires no row trigger: it names every key.
CREATE TRIGGER registry_partner_key_truncated
    AFTER TRUNCATE ON api_partnerkey
    FOR EACH STATEMENT EXECUTE FUNCTION registry_partner_notify();

CREATE TRIGGER registry_partner_truncated
    AFTER TRUNCATE ON api_partner
    FOR EACH STATEMENT EXECUTE FUNCTION registry_partner_notify();
"""

_DROP = """
DROP TRIGGER IF EXISTS registry_partner_key_changed ON api_partnerkey;
DROP TRIGGER IF EXISTS registry_partner_changed ON api_partner;
DROP TRIGGER IF EXISTS registry_partner_key_truncated ON api_partnerkey;
DROP TRIGGER IF EXISTS registry_partner_truncated ON api_partner;
DROP FUNCTION IF EXISTS registry_partner_key_notify();
DROP FUNCTION IF EXISTS registry_partner_notify();
"""


def _on_postgresql(sql: str) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("registry", "0012_image_hash_derived_views")]

    operations = [migrations.RunPython(_on_postgresql(_CREATE), _on_postgresql(_DROP))]

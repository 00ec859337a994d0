"""The partner ids of disclosures, feedback, withdrawal acknowledgements and partners'
submissions become foreign keys, now that partners are registry models.

The columns keep their names and their values; each gains its foreign key constraint and an
index (a partner's records are read by partner). A partner is never deleted (PROTECT), so
every stored id names an existing partner.
"""

import django.db.models.deletion
from django.db import migrations, models


def _partner_key(model_name: str, related_name: str) -> list[migrations.operations.base.Operation]:
    """Turn ``<model>.partner_id`` (an integer) into ``<model>.partner`` (a foreign key).

    The field is renamed first (its column with it), then altered into a foreign key, whose
    column is ``partner_id`` again: Django's own operations, on PostgreSQL and SQLite alike.
    """
    return [
        migrations.RenameField(model_name=model_name, old_name="partner_id", new_name="partner"),
        migrations.AlterField(
            model_name=model_name,
            name="partner",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name=related_name,
                to="registry.partner",
            ),
        ),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0005_partners_move_to_registry"),
        ("registry", "0008_partners_move_to_registry"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="disclosure", name="disclosure_once"),
        migrations.RemoveConstraint(model_name="withdrawalack", name="ack_once"),
        *_partner_key("disclosure", "disclosures"),
        *_partner_key("feedback", "feedback"),
        *_partner_key("withdrawalack", "withdrawal_acks"),
        migrations.AddConstraint(
            model_name="disclosure",
            constraint=models.UniqueConstraint(fields=("partner", "image"), name="disclosure_once"),
        ),
        migrations.AddConstraint(
            model_name="withdrawalack",
            constraint=models.UniqueConstraint(fields=("partner", "image"), name="ack_once"),
        ),
        migrations.AlterField(
            model_name="registeredimage",
            name="submitted_by_partner",
            field=models.ForeignKey(
                blank=True,
                db_column="submitted_by_partner",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="submitted_images",
                to="registry.partner",
            ),
        ),
        migrations.AlterModelOptions(
            name="allowlistedhash",
            options={
                "verbose_name": "allow-listed hash",
                "verbose_name_plural": "allow-listed hashes",
            },
        ),
    ]

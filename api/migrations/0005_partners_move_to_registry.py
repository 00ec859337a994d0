"""The partner models now live in registry (its 0008): forget them here, keep their tables."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0004_probing_alert"),
        ("registry", "0008_partners_move_to_registry"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ProbingAlert"),
                migrations.DeleteModel(name="IdempotencyRecord"),
                migrations.DeleteModel(name="WebhookDelivery"),
                migrations.DeleteModel(name="MatchCall"),
                migrations.DeleteModel(name="PartnerKey"),
                migrations.DeleteModel(name="Partner"),
            ],
            database_operations=[],
        ),
    ]

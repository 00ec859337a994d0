"""Partners may agree to be named to people as platforms where the protection applies."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("registry", "0009_partner_foreign_keys")]

    operations = [
        migrations.AddField(
            model_name="partner",
            name="listed_publicly",
            field=models.BooleanField(
                default=False,
                help_text="The platform agreed to be named to people as one that checks the registry.",
            ),
        ),
        migrations.AddField(
            model_name="partner",
            name="public_name",
            field=models.CharField(
                blank=True, help_text="The name people know it by; empty: its name.", max_length=100
            ),
        ),
    ]

"""Partners, their keys and their records are domain: their models move from api to registry.

The tables stay as they are (``api_partner`` and the others keep their names): only Django's
record of which application holds the models changes, here and in api's 0005. Content types
follow, so that permissions and admin history keep pointing at the same models.
"""

import django.db.models.deletion
import django.utils.timezone
from django.apps.registry import Apps
from django.conf import settings
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

import registry.models.partners

MOVED = ["partner", "partnerkey", "matchcall", "webhookdelivery", "idempotencyrecord", "probingalert"]


def _content_types_move(source: str, target: str):
    def move(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        content_type = apps.get_model("contenttypes", "ContentType")
        manager = content_type.objects.using(schema_editor.connection.alias)
        for model in MOVED:
            if not manager.filter(app_label=target, model=model).exists():
                manager.filter(app_label=source, model=model).update(app_label=target)

    return move


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0004_probing_alert"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("registry", "0007_audit_actions_partner_staff"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.CreateModel(
                name='Partner',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(max_length=100, unique=True)),
                    ('is_active', models.BooleanField(default=True)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('match_hashes_per_minute', models.PositiveIntegerField(blank=True, null=True)),
                    ('sync_scopes', models.JSONField(blank=True, default=registry.models.partners._default_sync_scopes)),
                    ('webhook_url', models.URLField(blank=True, max_length=500)),
                    ('webhook_secret', models.CharField(blank=True, max_length=128)),
                ],
                options={
                    'db_table': 'api_partner',
                                    },
            ),
            migrations.CreateModel(
                name='PartnerKey',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('partner', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='keys', to='registry.partner')),
                    ('lookup_id', models.CharField(max_length=16, unique=True)),
                    ('digest', models.CharField(max_length=64)),
                    ('scopes', models.JSONField(default=list)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('expires_at', models.DateTimeField(blank=True, null=True)),
                    ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ('slowed_since', models.DateTimeField(blank=True, null=True)),
                ],
                options={
                    'db_table': 'api_partnerkey',
                                    },
            ),
            migrations.CreateModel(
                name='MatchCall',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('partner', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='match_calls', to='registry.partner')),
                    ('key', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='match_calls', to='registry.partnerkey')),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('purpose', models.CharField(choices=[('publish', 'Before publishing'), ('ai_edit', 'Before an AI edit')], max_length=16)),
                    ('hashes', models.PositiveIntegerField()),
                    ('matched_hashes', models.PositiveIntegerField()),
                    ('matches', models.PositiveIntegerField()),
                ],
                options={
                    'db_table': 'api_matchcall',
                    'indexes': [models.Index(fields=['partner', 'created_at'], name='matchcall_partner_time')],
                },
            ),
            migrations.CreateModel(
                name='WebhookDelivery',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('partner', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='deliveries', to='registry.partner')),
                    ('change', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='deliveries', to='registry.change')),
                    ('webhook_id', models.CharField(max_length=64, unique=True)),
                    ('event_type', models.CharField(max_length=32)),
                    ('payload', models.JSONField()),
                    ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed')], default='pending', max_length=16)),
                    ('attempts', models.PositiveIntegerField(default=0)),
                    ('next_attempt_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('last_error', models.CharField(blank=True, max_length=500)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ],
                options={
                    'verbose_name_plural': 'webhook deliveries',
                    'db_table': 'api_webhookdelivery',
                    'indexes': [models.Index(fields=['status', 'next_attempt_at'], name='delivery_due')],
                    'constraints': [models.UniqueConstraint(fields=('partner', 'change'), name='delivery_once_per_change')],
                },
            ),
            migrations.CreateModel(
                name='IdempotencyRecord',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('scope', models.CharField(max_length=80)),
                    ('key_digest', models.CharField(max_length=64)),
                    ('request_digest', models.CharField(max_length=64)),
                    ('status_code', models.PositiveSmallIntegerField(default=0)),
                    ('response_sealed', models.BinaryField(default=b'')),
                    ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ],
                options={
                    'db_table': 'api_idempotencyrecord',
                    'constraints': [models.UniqueConstraint(fields=('scope', 'key_digest'), name='idempotency_key_unique')],
                                    },
            ),
            migrations.CreateModel(
                name='ProbingAlert',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('key', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='probing_alerts', to='registry.partnerkey')),
                    ('partner', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='probing_alerts', to='registry.partner')),
                    ('reason', models.CharField(choices=[('clustered_queries', 'Queries within a few bits of each other'), ('high_hit_rate', 'Abnormal share of queries matching')], max_length=32)),
                    ('queries', models.PositiveIntegerField()),
                    ('matched_queries', models.PositiveIntegerField()),
                    ('close_pairs', models.PositiveIntegerField()),
                    ('opened_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('cleared_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='probing_alerts_cleared', to=settings.AUTH_USER_MODEL)),
                    ('cleared_at', models.DateTimeField(blank=True, null=True)),
                ],
                options={
                    'db_table': 'api_probingalert',
                    'indexes': [models.Index(fields=['key', 'cleared_at'], name='probing_alert_key_open')],
                    'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('cleared_at__isnull', True), ('cleared_by__isnull', True)), models.Q(('cleared_at__isnull', False), ('cleared_by__isnull', False)), _connector='OR'), name='probing_alert_cleared_by_someone')],
                },
            ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            _content_types_move("api", "registry"), _content_types_move("registry", "api")
        ),
    ]

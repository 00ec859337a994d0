"""``manage.py audit_verify``: check the audit record's hash chain, name the first break."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from registry.services.audit import chain_verify


class Command(BaseCommand):
    help = "Check every audit event's digest and link; exit with an error at the first break."

    def handle(self, *args: Any, **options: Any) -> None:
        checked, broken = chain_verify()
        if broken is not None:
            raise CommandError(
                f"Audit chain broken at event {broken.event_id}: {broken.reason} "
                f"({checked} events before it verified)."
            )
        self.stdout.write(f"Audit chain intact: {checked} events verified.")

"""``manage.py partner_create NAME --scopes match,sync``: a partner and its first key."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from registry.exceptions import InvalidInput
from registry.models import Partner
from registry.services.partners import partner_create, partner_key_issue


class Command(BaseCommand):
    help = "Create a partner and issue its first API key, printed once on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--scopes",
            default="match",
            help="Comma-separated scopes: match, sync, feedback, submit (default: match).",
        )
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="Expire the key after N days."
        )
        parser.add_argument(
            "--if-absent",
            action="store_true",
            help="Do nothing (and print no key) if the partner exists already.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        if options["if_absent"] and Partner.objects.filter(name=name).exists():
            self.stdout.write(f"Partner {name!r} exists already; its key was shown at creation.")
            return
        days: int | None = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        expires_at = timezone.now() + dt.timedelta(days=days) if days else None
        scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
        try:
            with transaction.atomic():  # No partner without its key.
                partner = partner_create(name=name, actor="staff:cli")
                issued = partner_key_issue(
                    partner=partner, scopes=scopes, expires_at=expires_at, actor="staff:cli"
                )
        except InvalidInput as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            f"Created partner {partner.name!r} with scopes {','.join(issued.key.scopes)}. "
            "Its key follows; it is shown this once:"
        )
        self.stdout.write(issued.raw)
